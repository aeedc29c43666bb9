"""Fault catalogue, scenario files and flags, and the ground truth written for every incident."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType


@dataclass(frozen=True, slots=True)
class FaultDef:
    """What a fault does to which kind of device, and the alarm types it must produce."""

    name: str
    kind: Kind
    alarm_types: tuple[AlarmType, ...]
    default_duration_s: int
    description: str


_H = 3600
FAULTS: dict[str, FaultDef] = {
    f.name: f
    for f in (
        FaultDef(
            "lamp_out",
            Kind.LIGHTING,
            (AlarmType.LAMP_OUT,),
            6 * _H,
            "relay on, no light (power ~0)",
        ),
        FaultDef(
            "lit_by_day",
            Kind.LIGHTING,
            (AlarmType.LIT_BY_DAY,),
            3 * _H,
            "lamp stays on in daylight",
        ),
        FaultDef("voltage_sag", Kind.LIGHTING, (AlarmType.UNDER_VOLTAGE,), 2 * _H, "supply ~185 V"),
        FaultDef(
            "voltage_surge", Kind.LIGHTING, (AlarmType.OVER_VOLTAGE,), 2 * _H, "supply ~252 V"
        ),
        FaultDef(
            "power_degradation",
            Kind.LIGHTING,
            (AlarmType.POWER_ABNORMAL,),
            4 * _H,
            "power ~50% of expected",
        ),
        FaultDef(
            "flicker",
            Kind.LIGHTING,
            (AlarmType.FLICKER,),
            1 * _H,
            "lamp cycles on and off every minute",
        ),
        FaultDef(
            "lamp_offline",
            Kind.LIGHTING,
            (AlarmType.OFFLINE,),
            2 * _H,
            "controller silent, status offline",
        ),
        FaultDef(
            "cabinet_trip",
            Kind.CABINET,
            (AlarmType.CABINET_TRIP,),
            2 * _H,
            "main breaker trips: every circuit dark",
        ),
        FaultDef(
            "circuit_loss",
            Kind.CABINET,
            (AlarmType.CIRCUIT_DARK,),
            2 * _H,
            "one circuit's breaker trips",
        ),
        FaultDef(
            "cabinet_door_open",
            Kind.CABINET,
            (AlarmType.DOOR_OPEN,),
            2 * _H,
            "cabinet door left open (day or night)",
        ),
        FaultDef(
            "cabinet_offline",
            Kind.CABINET,
            (AlarmType.OFFLINE,),
            2 * _H,
            "cabinet silent, status offline",
        ),
        FaultDef(
            "truck_off_route",
            Kind.TRUCK,
            (AlarmType.ROUTE_DEVIATION,),
            10 * 60,
            "drives ~300 m off the corridor",
        ),
        FaultDef(
            "truck_illegal_dump",
            Kind.TRUCK,
            (AlarmType.ILLEGAL_DUMPING,),
            5 * 60,
            "lifts the body away from any site",
        ),
        FaultDef(
            "truck_unapproved_disposal",
            Kind.TRUCK,
            (AlarmType.UNAPPROVED_DISPOSAL, AlarmType.ROUTE_DEVIATION),
            8 * 60,
            "unloads at a disposal site not on the permit",
        ),
        FaultDef(
            "truck_outside_hours",
            Kind.TRUCK,
            (AlarmType.OUTSIDE_HOURS,),
            0,
            "makes a trip outside the permit's hours",
        ),
        FaultDef(
            "truck_cover_open",
            Kind.TRUCK,
            (AlarmType.COVER_OPEN_MOVING,),
            8 * 60,
            "drives loaded with the cover open",
        ),
        FaultDef(
            "truck_overspeed", Kind.TRUCK, (AlarmType.OVERSPEED,), 5 * 60, "drives at ~75 km/h"
        ),
        FaultDef(
            "truck_gps_gap", Kind.TRUCK, (AlarmType.TRACK_GAP,), 10 * 60, "no fixes while moving"
        ),
        FaultDef(
            "truck_gps_jump", Kind.TRUCK, (AlarmType.TRACK_JUMP,), 0, "one fix several km away"
        ),
        FaultDef(
            "truck_offline",
            Kind.TRUCK,
            (AlarmType.OFFLINE,),
            2 * _H,
            "terminal silent, status offline",
        ),
        FaultDef(
            "manhole_tilt", Kind.MANHOLE, (AlarmType.TILT,), 3 * _H, "cover tilted ~25 degrees"
        ),
        FaultDef(
            "manhole_displaced",
            Kind.MANHOLE,
            (AlarmType.COVER_OPEN, AlarmType.TILT),
            3 * _H,
            "cover pushed aside: open and tilted",
        ),
        FaultDef("manhole_open", Kind.MANHOLE, (AlarmType.COVER_OPEN,), 2 * _H, "cover lifted off"),
        FaultDef(
            "manhole_water_rising",
            Kind.MANHOLE,
            (AlarmType.WATER_ALERT, AlarmType.WATER_DANGER),
            4 * _H,
            "water rises to peak_cm and recedes",
        ),
        FaultDef(
            "manhole_low_battery",
            Kind.MANHOLE,
            (AlarmType.LOW_BATTERY,),
            24 * _H,
            "battery ~10% until replaced",
        ),
        FaultDef(
            "manhole_offline",
            Kind.MANHOLE,
            (AlarmType.OFFLINE,),
            6 * _H,
            "sensor silent, status offline",
        ),
        FaultDef(
            "parking_overstay",
            Kind.PARKING,
            (AlarmType.OVERSTAY,),
            2 * _H,
            "a car stays this long beyond max_stay_min",
        ),
        FaultDef(
            "parking_stuck",
            Kind.PARKING,
            # stuck at occupied on a spot with a maximum stay it also reads as an overstay
            (AlarmType.STUCK_SENSOR, AlarmType.OVERSTAY),
            # a stuck sensor stays stuck until someone repairs it; 30 h outlasts the hub's
            # 24 h window (a quiet spot legitimately shows no change for a night)
            30 * _H,
            "sensor repeats one state",
        ),
        FaultDef(
            "parking_offline",
            Kind.PARKING,
            (AlarmType.OFFLINE,),
            6 * _H,
            "sensor silent, status offline",
        ),
    )
}

# Thresholds the simulators design faults and noise around (documented in docs/simulators.md).
WATER_ALERT_CM = 100.0
WATER_DANGER_CM = 150.0
LOW_BATTERY_PCT = 20.0
TILT_ALARM_DEG = 10.0
OVERSPEED_KMH = 60.0
UNDER_VOLTAGE_V = 198.0
OVER_VOLTAGE_V = 242.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(text: str | float) -> float:
    """Parse `90`, `90s`, `30m`, `2h`, `1d` (or a number of seconds) into seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 2h, 1d)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class FaultSpecModel(BaseModel):
    """One fault in a scenario file."""

    model_config = ConfigDict(extra="forbid")

    fault: str
    device: str | None = None
    at: str | float = 0
    duration: str | float | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("fault")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FAULTS:
            raise ValueError(f"unknown fault {value!r}; known: {', '.join(sorted(FAULTS))}")
        return value


class NoiseModel(BaseModel):
    """Realistic noise that must not raise alarms; ratios are per message, rates per device-day."""

    model_config = ConfigDict(extra="forbid")

    duplicate_ratio: float = Field(default=0.002, ge=0, le=1)
    late_ratio: float = Field(default=0.002, ge=0, le=1)
    late_max_s: float = Field(default=240.0, ge=0)
    gps_edge_ratio: float = Field(default=0.25, ge=0, le=1)
    tilt_spikes_per_day: float = Field(default=1.0, ge=0)
    parking_jitter_per_day: float = Field(default=1.0, ge=0)
    truck_outages_per_day: float = Field(default=2.0, ge=0)

    @classmethod
    def silent(cls) -> "NoiseModel":
        """No noise at all."""
        return cls(
            duplicate_ratio=0,
            late_ratio=0,
            gps_edge_ratio=0,
            tilt_spikes_per_day=0,
            parking_jitter_per_day=0,
            truck_outages_per_day=0,
        )


class RandomFaultsModel(BaseModel):
    """Draw `count` faults of the listed types at random devices and times within `within`."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=0, ge=0)
    within: str | float = "12h"
    faults: list[str] | None = None


class ScenarioModel(BaseModel):
    """A scenario file: optional start time, noise settings, explicit and random faults."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | None = None
    seed: int | None = None
    noise: NoiseModel = Field(default_factory=NoiseModel)
    faults: list[FaultSpecModel] = Field(default_factory=list)
    random: RandomFaultsModel = Field(default_factory=RandomFaultsModel)


def load_scenario(path: Path) -> ScenarioModel:
    """Read and validate a YAML scenario; errors name the file and the bad entry."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return ScenarioModel.model_validate(data)
    except (yaml.YAMLError, ValidationError) as err:
        raise ValueError(f"{path}: {err}") from err


def parse_fault_flag(text: str) -> FaultSpecModel:
    """Parse `--fault TYPE[,device=ID][,at=30m][,duration=2h][,KEY=VALUE...]`."""
    name, *pairs = [part.strip() for part in text.split(",")]
    values: dict[str, Any] = {"fault": name}
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--fault {text!r}: expected key=value, got {pair!r}")
        if key in ("device", "at", "duration"):
            values[key] = value
        else:
            params[key] = _scalar(value)
    values["params"] = params
    try:
        return FaultSpecModel.model_validate(values)
    except ValidationError as err:
        raise ValueError(f"--fault {text!r}: {err}") from err


def _scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


@dataclass(slots=True)
class ActiveFault:
    """A fault placed on one device for a time window (epoch ms); devices may move the window."""

    name: str
    device_id: str
    start_ms: int
    end_ms: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def definition(self) -> FaultDef:
        """The catalogue entry."""
        return FAULTS[self.name]


@dataclass(frozen=True, slots=True)
class Incident:
    """One ground-truth incident: a device, an AlarmType value and when the condition held."""

    device_id: str
    kind: Kind
    type: AlarmType
    start_ms: int
    end_ms: int
    fault: str

    def to_record(self) -> dict[str, Any]:
        """The JSON-lines record."""
        return {
            "device_id": self.device_id,
            "kind": self.kind.value,
            "type": self.type.value,
            "start": format_ts(self.start_ms),
            "end": format_ts(self.end_ms),
            "fault": self.fault,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Incident":
        """Parse a JSON-lines record written by `to_record`."""
        return cls(
            device_id=str(record["device_id"]),
            kind=Kind(record["kind"]),
            type=AlarmType(record["type"]),
            start_ms=parse_ts_ms(str(record["start"])),
            end_ms=parse_ts_ms(str(record["end"])),
            fault=str(record.get("fault", "")),
        )


def format_ts(ts_ms: int) -> str:
    """RFC 3339 in UTC with milliseconds."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def parse_ts_ms(text: str) -> int:
    """RFC 3339 with an offset to epoch milliseconds."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return round(parsed.timestamp() * 1000)


class TruthWriter:
    """Appends incidents as JSON lines and flushes each, so a killed run keeps what it wrote."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.incidents: list[Incident] = []

    def write(self, incidents: Iterable[Incident]) -> None:
        """Record incidents."""
        for incident in incidents:
            self.incidents.append(incident)
            self._handle.write(orjson.dumps(incident.to_record()) + b"\n")
        self._handle.flush()


def read_truth(path: Path) -> list[Incident]:
    """Read a ground-truth JSON-lines file."""
    incidents = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                incidents.append(Incident.from_record(orjson.loads(line)))
            except (ValueError, KeyError) as err:
                raise ValueError(f"{path}:{number}: {err}") from err
    return incidents


def resolve_start_ms(spec: FaultSpecModel, sim_start_ms: int) -> int:
    """A fault's start: an offset from the simulation start, or an absolute RFC 3339 time."""
    at = spec.at
    if isinstance(at, str) and ("T" in at or at.count("-") >= 2):
        return parse_ts_ms(at)
    return sim_start_ms + int(parse_duration_s(at) * 1000)


def fault_kinds(names: Sequence[str]) -> set[Kind]:
    """The kinds a list of fault names applies to."""
    return {FAULTS[n].kind for n in names}
