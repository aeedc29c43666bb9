"""Parameters of the muck-truck rules (their sections of the rules file, hub/rules/trucks.py)."""

from pydantic import BaseModel, ConfigDict, Field

from hub.rules.truck_context import SITE_SEARCH_M


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteParams(_Params):
    """Corridor tolerance (GPS jitter up to `jitter_m` beyond the corridor is not a deviation)
    and how long a truck must stay back inside before it counts as having rejoined."""

    jitter_m: float = Field(default=10.0, ge=0)
    rejoin_s: float = Field(default=60.0, ge=0)


class DumpParams(_Params):
    """Where unloading is legitimate: near an approved site; how far an episode reaches."""

    disposal_radius_m: float = Field(default=500.0, gt=0, le=SITE_SEARCH_M)
    construction_radius_m: float = Field(default=200.0, gt=0, le=SITE_SEARCH_M)
    episode_radius_m: float = Field(default=150.0, gt=0)


class PermitParams(_Params):
    """Local time zone of permit hours and dates; speed above which a truck is transporting."""

    timezone: str = "Asia/Shanghai"
    moving_kmh: float = Field(default=5.0, ge=0)


class CoverParams(_Params):
    """Speed above which the truck counts as moving."""

    moving_kmh: float = Field(default=5.0, ge=0)


class SpeedParams(_Params):
    """Default limit outside speed zones and the hysteresis below the limit to clear."""

    default_limit_kmh: float = Field(default=60.0, gt=0)
    tolerance_kmh: float = Field(default=0.0, ge=0)
    clear_below_kmh: float = Field(default=5.0, ge=0)


class TrackParams(_Params):
    """Gap between fixes with ACC on (shorter than offline), jump distance and plausible speed."""

    min_gap_s: float = Field(default=120.0, gt=0)
    max_gap_s: float = Field(default=600.0, gt=0)
    jump_m: float = Field(default=2_000.0, gt=0)
    max_plausible_kmh: float = Field(default=150.0, gt=0)


class ZoneParams(_Params):
    """Local time zone of restricted-zone hours."""

    timezone: str = "Asia/Shanghai"


class SegmentParams(BaseModel):
    """Stop detection: slow or ACC off, staying within a radius, for a minimum duration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_speed_kmh: float = 5.0
    stop_radius_m: float = 100.0
    min_stop_s: float = 120.0
    site_radius_m: float = 500.0
    site_speed_kmh: float = 15.0
    site_min_dwell_s: float = 180.0
