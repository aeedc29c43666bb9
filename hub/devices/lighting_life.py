"""Lamp and driver life: burning hours and switching counts against rated life, and when to
replace them at the rate the lamp burns.

The store counts hours and switches from telemetry (hub/store/lighting_energy.py); this
module judges them. Rated lives come from the lamp's registry attributes, else from the
defaults per lamp type below (documented in docs/lighting.md). No I/O, no clock.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

DEFAULT_LAMP_LIFE_H: Mapping[str, float] = {
    "LED": 50_000.0,  # L70: light output down to 70 %
    "HPS": 24_000.0,  # high-pressure sodium, mortality 50 %
    "MH": 15_000.0,  # metal halide
}
FALLBACK_LAMP_LIFE_H = 20_000.0
"""A lamp type not in the table (or none given)."""
DEFAULT_DRIVER_LIFE_H = 50_000.0
"""An LED driver or an HPS ballast, at its rated case temperature."""
DEFAULT_RATED_SWITCHES = 50_000
"""On/off cycles a lamp and its driver are rated for (≈ 12 a day for 10 years)."""
PLAN_SHARE = 0.8
"""From this share of rated life used, the replacement is planned."""


class LifeStatus(StrEnum):
    """Where a lamp or driver stands against its rated life."""

    OK = "ok"
    PLAN = "plan"  # past PLAN_SHARE: put it in the next replacement round
    DUE = "due"  # rated life reached
    UNKNOWN = "unknown"  # not burned at all in the period: no rate to project


@dataclass(frozen=True, slots=True)
class RatedLife:
    """What a lamp and its driver are rated for, and what they had used before our records."""

    lamp_h: float
    driver_h: float
    switches: int
    hours_before: float = 0.0
    switches_before: int = 0


def _positive(attributes: Mapping[str, object], key: str) -> float | None:
    value = attributes.get(key)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def rated_life(attributes: Mapping[str, object]) -> RatedLife:
    """From registry attributes `rated_life_h`, `driver_rated_life_h`, `rated_switches`,
    `burning_hours_before`, `switches_before` (numbers or numeric strings), else defaults by
    `lamp_type`."""
    lamp_type = str(attributes.get("lamp_type", "")).upper()
    return RatedLife(
        lamp_h=_positive(attributes, "rated_life_h")
        or DEFAULT_LAMP_LIFE_H.get(lamp_type, FALLBACK_LAMP_LIFE_H),
        driver_h=_positive(attributes, "driver_rated_life_h") or DEFAULT_DRIVER_LIFE_H,
        switches=int(_positive(attributes, "rated_switches") or DEFAULT_RATED_SWITCHES),
        hours_before=_positive(attributes, "burning_hours_before") or 0.0,
        switches_before=int(_positive(attributes, "switches_before") or 0),
    )


@dataclass(frozen=True, slots=True)
class LampUsage:
    """What the telemetry says a lamp did over a period of `days`."""

    device_id: str
    burning_hours: float
    switches: int
    days: float
    attributes: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class PartForecast:
    """One part (lamp or driver): hours used, share of rated life, when it is due."""

    rated_h: float
    used_h: float
    used_share: float
    status: LifeStatus
    replace_by: datetime | None


@dataclass(frozen=True, slots=True)
class LifeForecast:
    """A lamp's life: burning hours and switches in total, and each part's forecast."""

    device_id: str
    burning_hours: float
    hours_per_day: float
    switches: int
    switches_per_day: float
    rated_switches: int
    lamp: PartForecast
    driver: PartForecast


def _part(rated_h: float, used_h: float, hours_per_day: float, now: datetime) -> PartForecast:
    share = used_h / rated_h if rated_h > 0 else 0.0
    if share >= 1.0:
        return PartForecast(rated_h, used_h, share, LifeStatus.DUE, now)
    if hours_per_day <= 0:
        return PartForecast(rated_h, used_h, share, LifeStatus.UNKNOWN, None)
    # switching wears a lamp too, but hours are what the rated life is stated in
    replace_by = now + timedelta(days=(rated_h - used_h) / hours_per_day)
    status = LifeStatus.PLAN if share >= PLAN_SHARE else LifeStatus.OK
    return PartForecast(rated_h, used_h, share, status, replace_by)


def forecast_life(usage: LampUsage, now: datetime) -> LifeForecast:
    """Hours and switches so far (records plus what came before), and each part's replacement
    date at the rate it burned over the period; a lamp past its rated switches is due too."""
    rated = rated_life(usage.attributes)
    hours = rated.hours_before + usage.burning_hours
    switches = rated.switches_before + usage.switches
    days = max(usage.days, 1.0 / 24)
    per_day = usage.burning_hours / days
    lamp = _part(rated.lamp_h, hours, per_day, now)
    if switches >= rated.switches and lamp.status is not LifeStatus.DUE:
        lamp = PartForecast(lamp.rated_h, hours, lamp.used_share, LifeStatus.DUE, now)
    return LifeForecast(
        device_id=usage.device_id,
        burning_hours=round(hours, 1),
        hours_per_day=round(per_day, 2),
        switches=switches,
        switches_per_day=round(usage.switches / days, 2),
        rated_switches=rated.switches,
        lamp=lamp,
        driver=_part(rated.driver_h, hours, per_day, now),
    )
