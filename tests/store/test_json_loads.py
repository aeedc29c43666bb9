"""The hub's JSON reader for json/jsonb columns reads what the standard library reads."""

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.pq import Format

from hub.store.database import Database, load_json

# Numbers as JSON text: integers of any length, fractions, exponents (beyond a double too).
number_texts = st.from_regex(
    r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 would hide a float)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@settings(max_examples=400)
@given(json_values, st.booleans())
def test_reads_generated_documents_as_json_loads(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert same(load_json(text), json.loads(text))


@settings(max_examples=400)
@given(st.lists(number_texts, min_size=1, max_size=4))
def test_reads_numbers_of_any_size_as_json_loads(numbers: list[str]) -> None:
    text = ("[" + ", ".join(numbers) + "]").encode()
    assert same(load_json(text), json.loads(text))


def test_integers_beyond_64_bits_stay_exact() -> None:
    big = 2**64 + 1
    assert load_json(f'{{"n": {big}, "m": -{big}}}'.encode()) == {"n": big, "m": -big}
    assert load_json(b"[1e400]") == [math.inf]


def test_refuses_what_json_loads_refuses() -> None:
    with pytest.raises(json.JSONDecodeError):
        load_json(b'{"a": ')


def test_the_pool_reads_jsonb_with_it(db: Database) -> None:
    big = 123456789012345678901234567890
    with db.connection() as conn:
        row = conn.execute(
            'SELECT %s::jsonb, \'{"x": 1.5, "y": [true, null]}\'::jsonb', (f'{{"n": {big}}}',)
        ).fetchone()
        loader = conn.adapters.get_loader(conn.adapters.types["jsonb"].oid, Format.TEXT)
    assert row is not None
    assert row[0] == {"n": big}
    assert same(row[1], {"x": 1.5, "y": [True, None]})
    assert loader is not None
    assert loader(0, conn).loads is load_json  # type: ignore[attr-defined]
