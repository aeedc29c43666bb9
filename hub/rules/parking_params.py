"""Parameters of the parking-spot rule (its section of the rules file).

A pydantic model, kept out of hub/rules/parking.py, which is compiled with mypyc
(hub/native.py): a model defined there would lose its constraints.
"""

from pydantic import BaseModel, ConfigDict, Field

# A reported state must stand this long before it counts (the debounce of a spot).
DEFAULT_CONFIRM_S = 60.0


class SpotParams(BaseModel):
    """How long a reported state must stand before it counts, and when a quiet sensor is stuck."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confirm_s: float = Field(default=DEFAULT_CONFIRM_S, ge=0, le=3600)
    stuck_after_s: float = Field(default=24 * 3600.0, gt=0)
