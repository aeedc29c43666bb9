"""亮灯率, energy and lamp life from the stored readings and hourly aggregates."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from hub.devices.lighting_life import LampUsage
from hub.rules.lighting_context import night_windows
from hub.store.lighting import CABINET_OF_SQL, Conn

Grouping = Literal["lamp", "cabinet", "district"]


@dataclass(frozen=True, slots=True)
class LightingRate:
    """亮灯率 of a district (None: the whole city) over a period."""

    district: str | None
    lamps: int
    due_samples: int
    lit_samples: int

    @property
    def rate_pct(self) -> float | None:
        """Lit over due readings, in percent; None when no lamp was due to be lit."""
        return None if self.due_samples == 0 else 100.0 * self.lit_samples / self.due_samples


RATE_NIGHT_MARGIN = timedelta(minutes=20)
"""Hours due at night begin this long after civil dusk and end this long before civil dawn
(as lit_by_day and dark_at_night judge): the switching around twilight is not counted."""
RATE_CELL_DIGITS = 1
"""Nights are computed per cell of this many decimal degrees (~10 km: dusk moves < 1 min)."""


def lighting_rates(
    conn: Conn, since: datetime, until: datetime, district_digits: int
) -> list[LightingRate]:
    """Lighting rate per district (grid code prefix) and for the city (district None, last).

    Due (the denominator) are the readings of every lamp that should be lit: reporting on
    (commanded or scheduled) or without supply, and — in hours wholly inside the night at
    the lamp's position, not covered by a commanded off or a lockout — reporting off with its
    supply live. Lit are the readings on and drawing more than 3 W.
    """
    cells = conn.execute(
        "SELECT DISTINCT round(lat::numeric, %s), round(lon::numeric, %s) FROM devices"
        " WHERE kind = 'lighting' AND lat IS NOT NULL AND lon IS NOT NULL",
        (RATE_CELL_DIGITS, RATE_CELL_DIGITS),
    ).fetchall()
    cell_lat: list[object] = []
    cell_lon: list[object] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for lat, lon in cells:
        for begins, finishes in night_windows(
            float(lat), float(lon), since, until, RATE_NIGHT_MARGIN
        ):
            cell_lat.append(lat)
            cell_lon.append(lon)
            starts.append(begins)
            ends.append(finishes)
    district = f"left(d.grid_code, {int(district_digits)})"  # an int: safe to inline
    rows = conn.execute(
        "WITH nights AS ("
        "  SELECT * FROM unnest(%(clat)s::numeric[], %(clon)s::numeric[],"
        "   %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS n(clat, clon, starts, ends)"
        "), intent AS ("
        "  SELECT device_id, created_at AS starts, next_at AS ends FROM ("
        "   SELECT device_id, action, params, created_at,"
        "    lead(created_at) OVER (PARTITION BY device_id ORDER BY created_at) AS next_at"
        "   FROM lighting_commands WHERE created_at < %(until)s"
        "    AND state NOT IN ('cancelled', 'superseded', 'failed', 'expired')) c"
        "  WHERE (action = 'off' OR (action = 'dim' AND (params ->> 'dim_pct')::float <= 0))"
        "   AND (next_at IS NULL OR next_at > %(since)s)"
        "  UNION ALL"
        "  SELECT unnest(device_ids), starts_at, least(ends_at, coalesce(cancelled_at, ends_at))"
        "  FROM lighting_lockouts WHERE starts_at < %(until)s AND ends_at > %(since)s"
        "), hours AS ("
        f"  SELECT {district} AS district, h.device_id, h.due_samples, h.lit_samples,"
        "   CASE WHEN EXISTS (SELECT 1 FROM nights n"
        f"      WHERE n.clat = round(d.lat::numeric, {RATE_CELL_DIGITS})"
        f"       AND n.clon = round(d.lon::numeric, {RATE_CELL_DIGITS})"
        "       AND n.starts <= h.bucket AND h.bucket + interval '1 hour' <= n.ends)"
        "    AND NOT EXISTS (SELECT 1 FROM intent i WHERE i.device_id = h.device_id"
        "       AND i.starts < h.bucket + interval '1 hour'"
        "       AND (i.ends IS NULL OR i.ends > h.bucket))"
        "   THEN h.dark_supplied_samples ELSE 0 END AS dark_due"
        "  FROM lighting_energy_hourly h JOIN devices d ON d.device_id = h.device_id"
        "  WHERE h.bucket >= %(since)s AND h.bucket < %(until)s"
        ")"
        " SELECT district, GROUPING(district), count(DISTINCT device_id),"
        " coalesce(sum(due_samples + dark_due), 0), coalesce(sum(lit_samples), 0)"
        " FROM hours GROUP BY GROUPING SETS ((district), ()) ORDER BY 2, 1",
        {
            "clat": cell_lat,
            "clon": cell_lon,
            "starts": starts,
            "ends": ends,
            "since": since,
            "until": until,
        },
    ).fetchall()
    return [
        LightingRate(None if r[1] else r[0], int(r[2]), int(r[3]), int(r[4]))
        for r in rows
        if r[1] or r[0] is not None
    ]


PLAUSIBLE_METER_KWH = 1e8
"""The highest lamp meter reading counted: 100 kW for a century is under 9e7 kWh. An hour whose
meter lies outside 0 … this (or is NaN or infinite) is left out of energy figures."""
MIN_SAVING_DIM_PCT = 1.0
"""Dim levels below 1 % count as 1 % in the saving: full power over a vanishing dim level is
no figure (100 / 1e-300 would dwarf the city's consumption)."""


@dataclass(frozen=True, slots=True)
class EnergyFigure:
    """Energy of a lamp, cabinet or district over a period, and what dimming saved."""

    key: str | None
    lamps: int
    energy_kwh: float
    saving_kwh: float
    implausible_hours: int = 0

    @property
    def full_power_kwh(self) -> float:
        """What the same lit hours would have cost undimmed."""
        return self.energy_kwh + self.saving_kwh


def energy_figures(
    conn: Conn, since: datetime, until: datetime, by: Grouping, district_digits: int = 9
) -> list[EnergyFigure]:
    """Lamp energy per lamp, cabinet or district, with the dimming saving, largest first.

    A lamp's energy is its meter's rise over the period; the saving of an hour is that
    hour's energy × (100 / mean lit dim % − 1), what full power would have added. Sums run
    in numeric, so no figure overflows; lamp-hours whose meter is beyond physical bounds
    (PLAUSIBLE_METER_KWH) are left out and counted in `implausible_hours`.
    """
    key = {
        "lamp": "d.device_id",
        "cabinet": CABINET_OF_SQL,
        "district": f"left(d.grid_code, {int(district_digits)})",
    }[by]
    rows = conn.execute(
        "WITH hours AS ("
        "  SELECT h.device_id, h.energy_first_kwh::numeric AS first_kwh,"
        "   h.energy_last_kwh::numeric AS last_kwh, h.lit_dim_pct::numeric AS dim_pct,"
        # NaN sorts above every number in PostgreSQL, so it fails the upper bound.
        "   (h.energy_first_kwh >= 0 AND h.energy_last_kwh <= %(max_kwh)s) AS plausible"
        "  FROM lighting_energy_hourly h WHERE h.bucket >= %(since)s AND h.bucket < %(until)s),"
        " per_lamp AS ("
        "  SELECT device_id,"
        "   max(last_kwh) FILTER (WHERE plausible) - min(first_kwh) FILTER (WHERE plausible)"
        "    AS energy_kwh,"
        "   sum(CASE WHEN dim_pct > 0 THEN (last_kwh - first_kwh)"
        "       * (100 / greatest(dim_pct, %(min_dim)s) - 1) ELSE 0 END)"
        "    FILTER (WHERE plausible) AS saving_kwh,"
        "   count(*) FILTER (WHERE NOT plausible) AS implausible_hours"
        "  FROM hours GROUP BY device_id)"
        f" SELECT {key} AS key, count(*), coalesce(sum(p.energy_kwh), 0),"
        "  coalesce(sum(p.saving_kwh), 0), sum(p.implausible_hours)"
        " FROM per_lamp p JOIN devices d ON d.device_id = p.device_id"
        " GROUP BY 1 ORDER BY 3 DESC, 1",
        {
            "since": since,
            "until": until,
            "max_kwh": PLAUSIBLE_METER_KWH,
            "min_dim": MIN_SAVING_DIM_PCT,
        },
    ).fetchall()
    return [
        EnergyFigure(r[0], int(r[1]), round(float(r[2]), 4), round(float(r[3]), 4), int(r[4] or 0))
        for r in rows
    ]


# -- lamp life: burning hours and switches -------------------------------------------------


def lamp_usage(
    conn: Conn,
    since: datetime,
    until: datetime,
    *,
    device_ids: Sequence[str] | None = None,
    cabinet: str | None = None,
) -> list[LampUsage]:
    """Burning hours (per hour: the share of readings lit, from lighting_energy_hourly) and
    on/off switches (changes of `on` between consecutive readings) of lamps in [since, until),
    with their registry attributes; `days` is the period from the lamp's first record in it.

    Every lamp chosen is listed, one without readings with 0 hours over the whole period.
    """
    clauses = ["d.kind = 'lighting'"]
    params: list[object] = []
    if device_ids is not None:
        clauses.append("d.device_id = ANY(%s)")
        params.append(list(device_ids))
    if cabinet is not None:
        clauses.append(f"{CABINET_OF_SQL} = %s")
        params.append(cabinet)
    lamps = conn.execute(
        f"SELECT d.device_id, d.attributes FROM devices d WHERE {' AND '.join(clauses)}"
        " ORDER BY d.device_id",
        params,
    ).fetchall()
    ids = [r[0] for r in lamps]
    if not ids:
        return []
    hours = {
        r[0]: (float(r[1] or 0.0), r[2])
        for r in conn.execute(
            "SELECT device_id, sum(lit_samples::float8 / nullif(samples, 0)), min(bucket)"
            " FROM lighting_energy_hourly"
            " WHERE device_id = ANY(%s) AND bucket >= %s AND bucket < %s GROUP BY device_id",
            (ids, since, until),
        ).fetchall()
    }
    switches = {
        r[0]: int(r[1])
        for r in conn.execute(
            "SELECT device_id, count(*) FILTER (WHERE previous IS NOT NULL AND lit <> previous)"
            ' FROM (SELECT device_id, "on" AS lit,'
            '   lag("on") OVER (PARTITION BY device_id ORDER BY ts) AS previous'
            "   FROM telemetry_lighting WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s) t"
            " GROUP BY device_id",
            (ids, since, until),
        ).fetchall()
    }
    period_days = (until - since).total_seconds() / 86_400
    out: list[LampUsage] = []
    for device_id, attributes in lamps:
        lit_h, first = hours.get(device_id, (0.0, None))
        days = (
            period_days if first is None else (until - max(first, since)).total_seconds() / 86_400
        )
        out.append(
            LampUsage(device_id, lit_h, switches.get(device_id, 0), days, dict(attributes or {}))
        )
    return out
