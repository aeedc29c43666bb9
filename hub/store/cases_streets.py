"""The city's streets layer (`city_layers`, name `streets`) as a StreetIndex for case
filing, rebuilt only when the layer changes (its `updated_at`)."""

import threading
from datetime import datetime

from hub.cases.streets import StreetIndex
from hub.store.cases_records import Conn

STREETS_LAYER = "streets"

_lock = threading.Lock()
_cached: tuple[datetime, StreetIndex] | None = None


def street_index(conn: Conn) -> StreetIndex | None:
    """The streets of the stored layer, None when no streets layer was imported."""
    global _cached  # noqa: PLW0603 - one index per process, shared by the filing threads
    row = conn.execute(
        "SELECT updated_at FROM city_layers WHERE name = %s", (STREETS_LAYER,)
    ).fetchone()
    if row is None:
        return None
    updated_at: datetime = row[0]
    with _lock:
        if _cached is not None and _cached[0] == updated_at:
            return _cached[1]
    doc = conn.execute(
        "SELECT geojson FROM city_layers WHERE name = %s", (STREETS_LAYER,)
    ).fetchone()
    if doc is None or not isinstance(doc[0], dict):
        return None
    index = StreetIndex.from_geojson(doc[0])
    with _lock:
        _cached = (updated_at, index)
    return index
