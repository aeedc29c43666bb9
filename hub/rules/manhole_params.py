"""Parameters of the manhole-cover rules (their sections of the rules file).

Pydantic models, kept out of hub/rules/manholes.py, which is compiled with mypyc
(hub/native.py): a model defined there would lose its constraints.
"""

from pydantic import BaseModel, ConfigDict, Field


class TiltParams(BaseModel):
    """Tilt from baseline that raises, per cover type, and the band below it that clears."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold_deg: float = Field(default=10.0, gt=0, le=90)
    threshold_by_cover_type_deg: dict[str, float] = Field(default_factory=dict)
    clear_margin_deg: float = Field(default=2.0, ge=0, le=45)

    def threshold_for(self, cover: str) -> float:
        """The raise threshold of one cover type."""
        return self.threshold_by_cover_type_deg.get(cover, self.threshold_deg)


class NoParams(BaseModel):
    """A rule with nothing to set beyond its policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelParams(BaseModel):
    """A level that raises and the margin below it that clears (hysteresis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raise_at: float = Field(allow_inf_nan=False)
    clear_margin: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class WaterAlertParams(LevelParams):
    """Water level alert (flood risk), centimetres above the well bottom."""

    raise_at: float = Field(default=100.0, allow_inf_nan=False)
    clear_margin: float = Field(default=5.0, ge=0, allow_inf_nan=False)


class WaterDangerParams(LevelParams):
    """Water level danger (about to overflow), centimetres above the well bottom."""

    raise_at: float = Field(default=150.0, allow_inf_nan=False)
    clear_margin: float = Field(default=5.0, ge=0, allow_inf_nan=False)


class GasParams(LevelParams):
    """Combustible gas in the well, % of the lower explosive limit."""

    raise_at: float = Field(default=20.0, allow_inf_nan=False)
    clear_margin: float = Field(default=5.0, ge=0, allow_inf_nan=False)


class BatteryParams(LevelParams):
    """Battery percentage at or below which the sensor needs a visit."""

    raise_at: float = Field(default=20.0, allow_inf_nan=False)
    clear_margin: float = Field(default=5.0, ge=0, allow_inf_nan=False)
