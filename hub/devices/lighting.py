"""Street lamps and cabinets: payloads, commands and schedules (targets, progress, fire times).

No I/O and no clock: the store supplies devices and commands, the caller passes `now`.
A command moves pending → sent → acked | failed | expired; it is (re)sent only while its
device is not known to be offline, at most `max_attempts` times, `ack_timeout` apart
and doubling, and never after its time-to-live.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, ClassVar

from astral import Observer
from astral.sun import dawn, dusk
from pydantic import Field

from hub.devices.kinds import Kind
from hub.devices.lighting_calendar import EVERY_NIGHT, DayRules, Scene, night_of
from hub.devices.wire import FiniteFloat, Payload, StoredText


class CommandAction(StrEnum):
    """What a lamp or cabinet is told to do."""

    ON = "on"
    OFF = "off"
    DIM = "dim"


class CommandState(StrEnum):
    """A command's lifecycle; acked, failed and expired are final."""

    PENDING = "pending"
    SENT = "sent"
    ACKED = "acked"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


OPEN_STATES = frozenset({CommandState.PENDING, CommandState.SENT})


class CommandEffect(StrEnum):
    """Whether the telemetry after an acked command shows what it asked for."""

    EFFECTIVE = "effective"
    NOT_EFFECTIVE = "not_effective"
    UNVERIFIED = "unverified"  # no telemetry at all within the window


class SunEvent(StrEnum):
    """Astronomical schedule anchors (civil twilight, as the cabinets switch)."""

    DUSK = "dusk"
    DAWN = "dawn"


class UnknownTargetError(LookupError):
    """A target that names no lamp, circuit, cabinet or group."""


@dataclass(frozen=True, slots=True)
class ControlledDevice:
    """A lamp or cabinet as remote control sees it."""

    device_id: str
    kind: Kind
    cabinet_id: str | None
    circuit_id: str | None
    group: str | None
    lat: float
    lon: float


def parse_dim_pct(action: CommandAction, params: Mapping[str, Any]) -> float | None:
    """The dim level a command carries; raise ValueError when a dim lacks a 0-100 level."""
    if action is not CommandAction.DIM:
        return None
    value = params.get("dim_pct")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValueError("a dim command needs dim_pct between 0 and 100")
    return float(value)


def expand_target(
    target: str, action: CommandAction, devices: Sequence[ControlledDevice]
) -> list[ControlledDevice]:
    """The devices one request addresses.

    `all` is every lamp; a lamp id is that lamp; a circuit id or `group:<name>` is its
    lamps; a cabinet id is the cabinet itself for on/off (its contactor) and its lamps for
    a dim. Raise UnknownTargetError when nothing matches.
    """
    lamps = [d for d in devices if d.kind is Kind.LIGHTING]
    if target == "all":
        chosen = lamps
    elif target.startswith("group:"):
        chosen = [d for d in lamps if d.group == target.removeprefix("group:")]
    else:
        exact = [d for d in devices if d.device_id == target]
        if exact and exact[0].kind is Kind.CABINET:
            if action is CommandAction.DIM:
                chosen = [d for d in lamps if d.cabinet_id == target]
            else:
                chosen = exact
        elif exact:
            chosen = exact
        else:
            chosen = [d for d in lamps if d.circuit_id == target]
    if not chosen:
        raise UnknownTargetError(f"target {target!r} names no lamp, circuit, cabinet or group")
    return chosen


def command_document(
    command_id: str,
    action: CommandAction,
    dim_pct: float | None,
    issued_at: datetime,
    expires_at: datetime,
) -> dict[str, object]:
    """The JSON body published on `<root>/<kind>/<device_id>/cmd`."""
    document: dict[str, object] = {
        "command_id": command_id,
        "action": action.value,
        "ts": int(issued_at.timestamp() * 1000),
        "expires_at": int(expires_at.timestamp() * 1000),
    }
    if dim_pct is not None:
        document["dim_pct"] = dim_pct
    return document


@dataclass(frozen=True, slots=True)
class OpenCommand:
    """A command not yet final, with what the store knows about its device and its reply."""

    command_id: str
    device_id: str
    kind: Kind
    action: CommandAction
    dim_pct: float | None
    state: CommandState
    created_at: datetime
    expires_at: datetime
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    device_online: bool | None
    ack_result: str | None
    ack_detail: str | None


class StepKind(StrEnum):
    """What to do with an open command now."""

    WAIT = "wait"
    SEND = "send"
    ACKED = "acked"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class CommandStep:
    """A decision about one command: its next state and when to look again."""

    kind: StepKind
    next_attempt_at: datetime
    detail: str | None = None


def decide_command_step(command: OpenCommand, now: datetime, ack_timeout: timedelta) -> CommandStep:
    """Acked on an ok reply, failed on another reply or when attempts run out, else send or wait."""
    if command.ack_result is not None:
        if command.ack_result == "ok":
            return CommandStep(StepKind.ACKED, command.next_attempt_at, command.ack_detail)
        reason = command.ack_result + (f": {command.ack_detail}" if command.ack_detail else "")
        return CommandStep(StepKind.FAILED, command.next_attempt_at, reason)
    if now >= command.expires_at:
        return CommandStep(StepKind.EXPIRED, command.next_attempt_at, "time-to-live passed")
    if command.device_online is False or now < command.next_attempt_at:
        # An offline device keeps its commands until it is back or their time-to-live ends.
        return CommandStep(StepKind.WAIT, command.next_attempt_at)
    if command.attempts >= command.max_attempts:
        return CommandStep(
            StepKind.FAILED,
            command.next_attempt_at,
            f"no acknowledgement after {command.attempts} attempt(s)",
        )
    wait = ack_timeout * (2**command.attempts)
    return CommandStep(StepKind.SEND, min(now + wait, command.expires_at))


# -- commanded vs reported state --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectedEffect:
    """What an obeying device reports: lit (contactor closed) or not, and a dim level."""

    kind: Kind
    on: bool
    dim_pct: float | None

    def document(self) -> dict[str, object]:
        """The expectation as evidence fields."""
        field = "contactor_on" if self.kind is Kind.CABINET else "on"
        out: dict[str, object] = {field: self.on}
        if self.dim_pct is not None:
            out["dim_pct"] = self.dim_pct
        return out


def expected_effect(kind: Kind, action: CommandAction, dim_pct: float | None) -> ExpectedEffect:
    """The state an obeying device reports: on (at `dim_pct` if given), off, or dimmed.

    A dim to 0 % is dark; an `on` that carries a dim level expects that level, the same
    rule schedules use. A cabinet has no dim level: only its contactor is judged.
    """
    if kind is Kind.CABINET:
        return ExpectedEffect(kind, action is not CommandAction.OFF, None)
    if action is CommandAction.OFF:
        return ExpectedEffect(kind, False, None)
    if dim_pct is not None and dim_pct <= 0:
        return ExpectedEffect(kind, False, None)
    return ExpectedEffect(kind, True, dim_pct)


@dataclass(frozen=True, slots=True)
class ReportedState:
    """A reading after the command: lamp `on` (or a cabinet's `contactor_on`), dim, power."""

    ts: datetime
    received_at: datetime
    on: bool
    dim_pct: float | None
    power_w: float | None

    def document(self, kind: Kind) -> dict[str, object]:
        """The reading as evidence fields."""
        field = "contactor_on" if kind is Kind.CABINET else "on"
        out: dict[str, object] = {field: self.on, "ts": self.ts.isoformat()}
        if self.dim_pct is not None:
            out["dim_pct"] = self.dim_pct
        if self.power_w is not None:
            out["power_w"] = self.power_w
        return out


@dataclass(frozen=True, slots=True)
class EffectRules:
    """How close a report must come to the expectation; the window to wait for it."""

    window: timedelta = timedelta(minutes=10)
    lit_min_w: float = 3.0
    dim_tolerance_pct: float = 2.0


def reported_matches(expected: ExpectedEffect, reported: ReportedState, rules: EffectRules) -> bool:
    """Whether one report shows the commanded state (a lamp lit by report and by power)."""
    if expected.kind is Kind.CABINET:
        return reported.on is expected.on
    drawing = reported.power_w is None or reported.power_w >= rules.lit_min_w
    if not expected.on:
        return not reported.on or not drawing
    if not (reported.on and drawing):
        return False
    if expected.dim_pct is None or reported.dim_pct is None:
        return True
    return abs(reported.dim_pct - expected.dim_pct) <= rules.dim_tolerance_pct


def judge_effect(
    expected: ExpectedEffect,
    reports: Sequence[ReportedState],
    acked_at: datetime,
    now: datetime,
    rules: EffectRules,
) -> CommandEffect | None:
    """Effective once a report after the command matches; after the window, not effective
    (reports, none matching) or unverified (no report); None while the window is open.

    `reports` are those received after the command was (last) sent, oldest first.
    """
    if any(reported_matches(expected, r, rules) for r in reports):
        return CommandEffect.EFFECTIVE
    if now < acked_at + rules.window:
        return None
    return CommandEffect.NOT_EFFECTIVE if reports else CommandEffect.UNVERIFIED


# -- schedules ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring command: at a fixed local time, or at dusk/dawn with an offset, on the
    nights its day rules select; with a scene, each of the scene's steps in turn."""

    schedule_id: int
    name: str
    target: str
    action: CommandAction
    params: Mapping[str, Any]
    at_local: time | None
    sun_event: SunEvent | None
    offset_min: int
    enabled: bool
    last_fired_at: datetime | None
    days: DayRules = EVERY_NIGHT
    scene: Scene | None = None


def schedule_params(action: CommandAction, dim_pct: float | None) -> dict[str, Any]:
    """The params of a command or schedule: a dim needs a level, an `on` may carry one (lit
    at that level), an `off` takes none. Raise ValueError otherwise.

    Commands and schedules share this rule, so what a schedule fires is what an operator
    could have sent.
    """
    if action is CommandAction.DIM and dim_pct is None:
        raise ValueError("a dim needs dim_pct between 0 and 100")
    if action is CommandAction.OFF and dim_pct is not None:
        raise ValueError("an off takes no dim_pct")
    if dim_pct is not None and not 0 <= dim_pct <= 100:
        raise ValueError("dim_pct is between 0 and 100")
    return {} if dim_pct is None else {"dim_pct": dim_pct}


def schedule_lights(schedule: Schedule) -> bool:
    """Whether the state a schedule sets is lit (on, or a dim above 0 %; a scene: any step)."""
    if schedule.scene is not None:
        return any(step.dim_pct > 0 for step in schedule.scene.steps)
    if schedule.action is CommandAction.OFF:
        return False
    level = schedule.params.get("dim_pct")
    return not (isinstance(level, int | float) and level <= 0)


def target_position(devices: Sequence[ControlledDevice]) -> tuple[float, float]:
    """Where a target's sun events are computed: the mean position of its devices."""
    if not devices:
        raise ValueError("a target position needs at least one device")
    return (
        sum(d.lat for d in devices) / len(devices),
        sum(d.lon for d in devices) / len(devices),
    )


def schedule_instant(
    schedule: Schedule, day: date, zone: tzinfo, lat: float, lon: float
) -> datetime | None:
    """When the occurrence anchored on local calendar `day` fires (None in polar day or night).

    The anchor (the fixed local time, or civil dusk/dawn on that local day at lat/lon) plus
    the offset: an offset may carry the instant onto the day before or after (00:00 −10 of
    the 11th fires at 23:50 on the 10th). Returned in UTC.
    """
    offset = timedelta(minutes=schedule.offset_min)
    if schedule.at_local is not None:
        anchor = datetime.combine(day, schedule.at_local, zone)
    else:
        event = dusk if schedule.sun_event is SunEvent.DUSK else dawn
        try:
            anchor = event(Observer(latitude=lat, longitude=lon), day, tzinfo=zone)
        except ValueError:
            return None
    return (anchor + offset).astimezone(UTC)


# offsets are within ±12 h and a scene spans at most 16 h: a firing lies within two days of
# its anchor day
_OFFSET_DAYS = 2
_CALENDAR_HORIZON = timedelta(days=370)  # a yearly festival's next night is within a year


def schedule_firings(
    schedule: Schedule, start: datetime, end: datetime, zone: tzinfo, lat: float, lon: float
) -> list[tuple[datetime, dict[str, Any]]]:
    """Every firing in [start, end] with the command params it sends, oldest first.

    Occurrences on nights the day rules leave out are skipped (the night of an anchor day:
    `night_of`); a scene's steps follow its instant, each a dim to the step's level.
    """
    first = start.astimezone(zone).date() - timedelta(days=_OFFSET_DAYS)
    last = end.astimezone(zone).date() + timedelta(days=_OFFSET_DAYS)
    dawn_anchored = schedule.sun_event is SunEvent.DAWN
    found: list[tuple[datetime, dict[str, Any]]] = []
    day = first
    while day <= last:
        instant = schedule_instant(schedule, day, zone, lat, lon)
        if instant is not None and schedule.days.runs(
            night_of(day, schedule.at_local, dawn_anchored)
        ):
            if schedule.scene is None:
                steps = [(instant, dict(schedule.params))]
            else:
                steps = [
                    (instant + timedelta(minutes=step.offset_min), {"dim_pct": step.dim_pct})
                    for step in schedule.scene.steps
                ]
            found.extend((at, params) for at, params in steps if start <= at <= end)
        day += timedelta(days=1)
    return sorted(found, key=lambda firing: firing[0])


def schedule_occurrences(
    schedule: Schedule, start: datetime, end: datetime, zone: tzinfo, lat: float, lon: float
) -> list[datetime]:
    """Every firing instant in [start, end], oldest first (enabled or not)."""
    return [at for at, _ in schedule_firings(schedule, start, end, zone, lat, lon)]


def firing_command(
    schedule: Schedule, instant: datetime, zone: tzinfo, lat: float, lon: float
) -> tuple[CommandAction, dict[str, Any]]:
    """The action and params a schedule sends at one of its instants (a scene: that step)."""
    for at, params in schedule_firings(schedule, instant, instant, zone, lat, lon):
        if at == instant and schedule.scene is not None:
            return CommandAction.DIM, params
    return schedule.action, dict(schedule.params)


def latest_occurrence(
    schedule: Schedule, now: datetime, zone: tzinfo, lat: float, lon: float
) -> datetime | None:
    """The last firing instant at or before `now` (within two days)."""
    found = schedule_occurrences(schedule, now - timedelta(days=2), now, zone, lat, lon)
    return found[-1] if found else None


def next_occurrence(
    schedule: Schedule, now: datetime, zone: tzinfo, lat: float, lon: float
) -> datetime | None:
    """The next firing instant after `now` (None for a disabled schedule): within two days,
    or within a year for a schedule whose day rules skip nights (a festival calendar)."""
    if not schedule.enabled:
        return None
    horizons = [timedelta(days=2)]
    if schedule.days != EVERY_NIGHT:
        horizons.append(_CALENDAR_HORIZON)
    for horizon in horizons:
        found = schedule_occurrences(schedule, now, now + horizon, zone, lat, lon)
        later = [t for t in found if t > now]
        if later:
            return later[0]
    return None


def schedule_due(
    schedule: Schedule,
    now: datetime,
    zone: tzinfo,
    lat: float,
    lon: float,
    grace: timedelta = timedelta(minutes=30),
) -> datetime | None:
    """The firing instant to act on now: the latest one passed, not fired yet, less than
    `grace` ago."""
    if not schedule.enabled:
        return None
    instant = latest_occurrence(schedule, now, zone, lat, lon)
    if instant is None or now - instant > grace:
        return None
    if schedule.last_fired_at is not None and schedule.last_fired_at >= instant:
        return None
    return instant


def _next_sun_event(
    event: SunEvent, after: datetime, zone: tzinfo, lat: float, lon: float
) -> datetime | None:
    anchor = Schedule(0, "", "", CommandAction.ON, {}, None, event, 0, True, None)
    found = schedule_occurrences(anchor, after, after + timedelta(days=2), zone, lat, lon)
    later = [t for t in found if t > after]
    return later[0] if later else None


def schedule_catch_up(
    schedule: Schedule,
    now: datetime,
    zone: tzinfo,
    lat: float,
    lon: float,
    others_fired: Sequence[datetime] = (),
) -> datetime | None:
    """For a schedule that has never fired: its latest passed instant when the state it sets
    should hold now, so it acts at once (a dusk-on created after dusk turns lamps on).

    The state holds from that instant until the next instant of another schedule on the same
    devices (`others_fired`: their latest passed instants) and, for a lit state (on, dim),
    until the next civil dawn; for off, until the next civil dusk — at the target's position.
    None when it does not hold (a midnight dim created in the evening waits for midnight).
    """
    if not schedule.enabled or schedule.last_fired_at is not None:
        return None
    instant = latest_occurrence(schedule, now, zone, lat, lon)
    if instant is None or any(instant < other <= now for other in others_fired):
        return None
    ends_with = SunEvent.DAWN if schedule_lights(schedule) else SunEvent.DUSK
    ends = _next_sun_event(ends_with, instant, zone, lat, lon)
    if ends is not None and ends <= now:
        return None
    return instant


# Cumulative energy counters: a lamp of 100 kW lit for a century stays under 1e8 kWh, a
# cabinet under 1e10; larger is a broken meter, and sums over it would overflow reports.
MAX_LAMP_ENERGY_KWH = 1e8
MAX_CABINET_ENERGY_KWH = 1e10


class LightingPayload(Payload):
    """Single-lamp controller reading."""

    kind: ClassVar[Kind] = Kind.LIGHTING
    on: bool
    dim_pct: FiniteFloat = Field(ge=0, le=100)
    voltage_v: FiniteFloat = Field(ge=0, le=1000)
    current_a: FiniteFloat = Field(ge=0, le=1000)
    power_w: FiniteFloat = Field(ge=0, le=100_000)
    power_factor: FiniteFloat = Field(ge=0, le=1)
    energy_kwh: FiniteFloat = Field(ge=0, le=MAX_LAMP_ENERGY_KWH)
    fault_code: StoredText | None = Field(default=None, max_length=32)


class CabinetPayload(Payload):
    """Lighting control cabinet reading: three phases, contactor and door."""

    kind: ClassVar[Kind] = Kind.CABINET
    contactor_on: bool
    door_open: bool
    voltage_a_v: FiniteFloat = Field(ge=0, le=1000)
    voltage_b_v: FiniteFloat = Field(ge=0, le=1000)
    voltage_c_v: FiniteFloat = Field(ge=0, le=1000)
    current_a_a: FiniteFloat = Field(ge=0, le=10_000)
    current_b_a: FiniteFloat = Field(ge=0, le=10_000)
    current_c_a: FiniteFloat = Field(ge=0, le=10_000)
    power_w: FiniteFloat = Field(ge=0, le=10_000_000)
    energy_kwh: FiniteFloat = Field(ge=0, le=MAX_CABINET_ENERGY_KWH)
