"""The wire contract's value checks that pydantic calls per message: a reading's `ts` and
storable text.

Plain functions in a module of their own, so that they are compiled with the hot modules
(hub/native.py): pydantic-core calls them once per message, and a compiled function costs
no Python frame. The models that use them are in hub/devices/wire.py (a pydantic model
must not be compiled).
"""

from datetime import UTC, datetime
from typing import Any


def parse_ts(value: Any) -> datetime:
    """Accept RFC 3339 with an offset, or integer epoch milliseconds; return aware UTC."""
    if isinstance(value, bool):
        raise ValueError("ts must be RFC 3339 text with an offset or integer epoch milliseconds")
    if isinstance(value, int):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as err:
            raise ValueError("ts epoch milliseconds out of range") from err
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as err:
            raise ValueError("ts is not RFC 3339") from err
        if parsed.tzinfo is None:
            raise ValueError("ts must carry a UTC offset")
        try:
            return parsed.astimezone(UTC)
        except OverflowError as err:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
            raise ValueError("ts is out of range") from err
    raise ValueError("ts must be RFC 3339 text with an offset or integer epoch milliseconds")


def refuse_nul(value: str) -> str:
    """PostgreSQL's text and jsonb cannot hold U+0000: refuse it here, not at the write."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value
