"""Case numbers as cities write them: optional prefix + local date (YYYYMMDD) + daily sequence.

The database hands out the sequence (one counter per local day); this module only
formats and parses.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from hub.cases.calendar import require_aware

DEFAULT_SEQ_WIDTH = 4
_PREFIX_RE = re.compile(r"^(?:[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z_-])?)?$")
_DATE_LEN = 8


class CaseNumberError(ValueError):
    """A case number, prefix or sequence is malformed."""


@dataclass(frozen=True, slots=True)
class CaseNumber:
    """The parts of a case number."""

    prefix: str
    local_date: date
    seq: int
    seq_width: int = DEFAULT_SEQ_WIDTH

    def __str__(self) -> str:
        return format_case_number(self.local_date, self.seq, self.prefix, self.seq_width)


def _check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise CaseNumberError(
            f"case number prefix {prefix!r} must start with a letter, use letters, digits, "
            "'-' or '_', and not end with a digit"
        )
    return prefix


def case_date(at: datetime, tz: ZoneInfo) -> date:
    """The local date a case number is taken from (the report instant in the city's zone)."""
    return require_aware(at, "reported_at").astimezone(tz).date()


def format_case_number(
    local_date: date, seq: int, prefix: str = "", seq_width: int = DEFAULT_SEQ_WIDTH
) -> str:
    """Prefix + YYYYMMDD + zero-padded sequence, e.g. ``CG202603170042``."""
    _check_prefix(prefix)
    if not 1 <= seq < 10**seq_width:
        raise CaseNumberError(f"sequence {seq} does not fit in {seq_width} digits (1 and up)")
    return f"{prefix}{local_date:%Y%m%d}{seq:0{seq_width}d}"


def parse_case_number(
    text: str, prefix: str = "", seq_width: int = DEFAULT_SEQ_WIDTH
) -> CaseNumber:
    """Split a case number written with this prefix and sequence width; raise if malformed."""
    _check_prefix(prefix)
    if not text.startswith(prefix):
        raise CaseNumberError(f"case number {text!r} does not start with {prefix!r}")
    digits = text[len(prefix) :]
    if len(digits) != _DATE_LEN + seq_width or not digits.isascii() or not digits.isdigit():
        raise CaseNumberError(
            f"case number {text!r} must be {prefix!r} + 8 date digits + {seq_width} sequence digits"
        )
    try:
        local_date = date(int(digits[:4]), int(digits[4:6]), int(digits[6:_DATE_LEN]))
    except ValueError as err:
        raise CaseNumberError(f"case number {text!r} has no valid date") from err
    seq = int(digits[_DATE_LEN:])
    if seq == 0:
        raise CaseNumberError(f"case number {text!r} has sequence 0; sequences start at 1")
    return CaseNumber(prefix=prefix, local_date=local_date, seq=seq, seq_width=seq_width)
