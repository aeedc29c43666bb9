"""Parameters of the street-lighting rules (their sections of the rules file).

Pydantic models, kept out of the rule modules: those are compiled with mypyc (hub/native.py),
which keeps a class's annotations as bare runtime types, so a model defined there would lose
its constraints and element types.
"""

from pydantic import BaseModel, ConfigDict


class LightingParams(BaseModel):
    """Rule parameters: unknown keys are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LampOutParams(LightingParams):
    """A lamp that says it is on but draws less than this share of its expected power."""

    dark_share: float = 0.1
    min_power_w: float = 3.0
    supply_min_v: float = 100.0


class LitByDayParams(LightingParams):
    """Lit in daylight: at least `margin_min` after civil dawn and before civil dusk."""

    margin_min: float = 20.0
    min_power_w: float = 3.0
    lat: float | None = None
    lon: float | None = None


class DarkAtNightParams(LightingParams):
    """Reported off at night (at least `margin_min` after civil dusk and before civil dawn)."""

    margin_min: float = 20.0
    supply_min_v: float = 100.0
    lat: float | None = None
    lon: float | None = None


class VoltageParams(LightingParams):
    """Supply voltage band (220 V ± 10 %) with a hysteresis margin to clear."""

    under_v: float = 198.0
    over_v: float = 242.0
    clear_margin_v: float = 4.0
    supply_min_v: float = 100.0


class OverCurrentParams(LightingParams):
    """Current above `factor` × rating / (voltage × `min_power_factor`)."""

    factor: float = 1.3
    min_power_factor: float = 0.8
    supply_min_v: float = 100.0


class PowerParams(LightingParams):
    """Power band around rating × dim: outside [low, high] raises, inside the clear band clears."""

    low_share: float = 0.7
    high_share: float = 1.3
    clear_low_share: float = 0.8
    clear_high_share: float = 1.2
    min_dim_pct: float = 10.0
    supply_min_v: float = 100.0
    dark_share: float = 0.1


class FlickerParams(LightingParams):
    """At least `min_switches` on/off changes within `window_s` is flicker."""

    window_s: float = 900.0
    min_switches: int = 6
    clear_switches: int = 1


class CabinetParams(LightingParams):
    """Contactor against civil dusk/dawn with a margin; phases below `supply_min_v` are dead."""

    margin_min: float = 20.0
    supply_min_v: float = 100.0
    night_off_is_fault: bool = True


class CabinetDarkParams(LightingParams):
    """Shares of a cabinet's lamps: dark or unsupplied → trip; a few unsupplied → a circuit."""

    trip_share: float = 0.8
    trip_clear_share: float = 0.3
    circuit_min_lamps: int = 3
    circuit_clear_lamps: int = 1
    supply_min_v: float = 100.0
    min_power_w: float = 3.0


class CableTheftParams(LightingParams):
    """A phase's current falling from at least `min_load_a` to at most `lost_share` of it and
    below `lost_max_a`, between readings at most `sudden_s` apart, is lost; back above
    `restore_share` of the load it is restored."""

    min_load_a: float = 1.0
    lost_share: float = 0.1
    lost_max_a: float = 0.3
    restore_share: float = 0.5
    sudden_s: float = 600.0
    supply_min_v: float = 100.0
    margin_min: float = 20.0


class PowerFactorParams(LightingParams):
    """Power factor of a lamp lit at `min_dim_pct` or more, averaged over `tau_s`."""

    low_pf: float = 0.7
    clear_pf: float = 0.75
    min_dim_pct: float = 50.0
    min_power_w: float = 3.0
    supply_min_v: float = 100.0
    tau_s: float = 3600.0
    min_coverage_s: float = 3600.0
    max_gap_s: float = 1800.0


class VoltageTrendParams(LightingParams):
    """Supply voltage averaged over `tau_s`, against a band tighter than lamp_voltage's."""

    low_v: float = 209.0  # 220 V − 5 %
    high_v: float = 231.0  # 220 V + 5 %
    clear_margin_v: float = 2.0
    supply_min_v: float = 100.0
    tau_s: float = 6 * 3600.0
    min_coverage_s: float = 3 * 3600.0
    max_gap_s: float = 3600.0
