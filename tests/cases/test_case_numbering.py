"""Tests of case number formatting and parsing."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.cases.numbering import (
    CaseNumber,
    CaseNumberError,
    case_date,
    format_case_number,
    parse_case_number,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_format_and_parse_round_trip() -> None:
    text = format_case_number(date(2026, 3, 17), 42, prefix="CG")
    assert text == "CG202603170042"
    assert parse_case_number(text, prefix="CG") == CaseNumber("CG", date(2026, 3, 17), 42)
    assert str(parse_case_number(text, prefix="CG")) == text
    assert format_case_number(date(2026, 3, 17), 7) == "202603170007"
    assert format_case_number(date(2026, 3, 17), 7, seq_width=6) == "20260317000007"


def test_case_date_is_the_local_date() -> None:
    # 17:30 UTC on 16 March is 01:30 on 17 March in Shanghai
    assert case_date(datetime(2026, 3, 16, 17, 30, tzinfo=UTC), SHANGHAI) == date(2026, 3, 17)
    assert case_date(datetime(2026, 3, 16, 15, 59, tzinfo=UTC), SHANGHAI) == date(2026, 3, 16)


@pytest.mark.parametrize(
    ("seq", "prefix", "message"),
    [
        (0, "", "does not fit"),
        (10_000, "", "does not fit"),
        (1, "CG1", "not end with a digit"),
        (1, "城管", "start with a letter"),
        (1, "-CG", "start with a letter"),
    ],
)
def test_format_refuses(seq: int, prefix: str, message: str) -> None:
    with pytest.raises(CaseNumberError, match=message):
        format_case_number(date(2026, 3, 17), seq, prefix=prefix)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("XX202603170042", "does not start with 'CG'"),
        ("CG20260317004", "8 date digits"),
        ("CG202613170042", "no valid date"),
        ("CG202603170000", "sequence 0"),
        ("CG2026031700４2", "8 date digits"),
    ],
)
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(CaseNumberError, match=message):
        parse_case_number(text, prefix="CG")
