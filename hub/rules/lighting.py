"""Street-lighting rules: lamp faults, cabinet anomalies, one alarm for a dark cabinet or circuit.

Lamp rules judge one single-lamp controller reading against its rating (`rated_power_w`
attribute), the dim level it reports and the sun at its location; a lamp whose supply is
gone (voltage near 0, `fault_code` SUPPLY_LOSS) is never judged as a lamp fault: that is
the group rule's business. The group rule sees the lamps of one cabinet (their registry
parent) and raises ONE `cabinet_trip` when most of them lost supply or went dark together,
or ONE `circuit_dark` when a few lamps (a circuit) lost supply; while it is active the
members' own lamp_out, under_voltage, power_abnormal and offline alarms are covered.
"""

import bisect
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from astral import Observer
from astral.sun import dawn, dusk
from pydantic import BaseModel, ConfigDict

from hub.devices.decode import Reading
from hub.devices.kinds import Kind
from hub.devices.lighting import CabinetPayload, LightingPayload
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation, Verdict
from hub.rules.interface import DeviceInfo, GroupRule, GroupView, Rule

SUPPLY_LOSS_CODE = "SUPPLY_LOSS"
T = TypeVar("T")


def _checked(value: Any, expected: type[T]) -> T:
    """The engine's per-rule state or parameters, narrowed to the rule's own type."""
    if not isinstance(value, expected):
        raise TypeError(f"expected {expected.__name__}, got {type(value).__name__}")
    return value


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sun --------------------------------------------------------------------------------


@dataclass(slots=True)
class SunTimes:
    """Civil dawn and dusk at a place, cached per ~1 km cell and UTC date (astral).

    Events are kept as epoch seconds: a reading is placed among them with float
    comparisons, not a datetime subtraction per event.
    """

    depression_deg: float = 6.0
    _cache: dict[tuple[float, float, int], tuple[tuple[float, bool], ...]] = field(
        default_factory=dict
    )

    def _events(self, lat: float, lon: float, day_number: int) -> tuple[tuple[float, bool], ...]:
        """(epoch s, is dawn) of the dawns and dusks from the day before to the day after.

        `day_number` is the UTC date as days since 1970-01-01.
        """
        key = (round(lat, 2), round(lon, 2), day_number)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        observer = Observer(latitude=key[0], longitude=key[1])
        day = _EPOCH_DATE + timedelta(days=day_number)
        events: set[tuple[float, bool]] = set()
        for offset in (-1, 0, 1):
            when = day + timedelta(days=offset)
            for event, is_dawn in ((dawn, True), (dusk, False)):
                try:
                    at = event(observer, when, self.depression_deg, tzinfo=UTC)
                except ValueError:  # polar day or night: no such event that date
                    continue
                events.add((at.timestamp(), is_dawn))
        result = tuple(sorted(events))
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[key] = result
        return result

    def phase(self, lat: float, lon: float, at: datetime) -> tuple[bool, float, float]:
        """(is day, seconds since the last dawn/dusk, seconds until the next one) at `at`."""
        at_s = at.timestamp()
        is_day = False
        since_s = math.inf
        until_s = math.inf
        for event_s, is_dawn in self._events(lat, lon, int(at_s // _DAY_S)):
            if at_s >= event_s:
                since_s = at_s - event_s
                is_day = is_dawn
            else:
                until_s = event_s - at_s
                break
        return is_day, since_s, until_s

    def is_day(self, lat: float, lon: float, at: datetime, margin_s: float) -> bool:
        """Daylight at least `margin_s` after dawn and before dusk."""
        return _daylight(self.phase(lat, lon, at), margin_s)

    def is_night(self, lat: float, lon: float, at: datetime, margin_s: float) -> bool:
        """Darkness at least `margin_s` after dusk and before dawn."""
        day, since_s, until_s = self.phase(lat, lon, at)
        return not day and since_s >= margin_s and until_s >= margin_s


_EPOCH_DATE = date(1970, 1, 1)
_DAY_S = 86_400


def _daylight(phase: tuple[bool, float, float], margin_s: float) -> bool:
    """A phase of `SunTimes.phase` at least `margin_s` into the day and before its end."""
    day, since_s, until_s = phase
    return day and since_s >= margin_s and until_s >= margin_s


SUN = SunTimes()


def night_windows(
    lat: float, lon: float, start: datetime, end: datetime, margin: timedelta
) -> list[tuple[datetime, datetime]]:
    """The nights at a place within [start, end]: from `margin` after civil dusk to `margin`
    before the next civil dawn, clipped to the period, oldest first (the lamps are due)."""
    observer = Observer(latitude=lat, longitude=lon)
    events: list[tuple[datetime, bool]] = []
    day = start.astimezone(UTC).date() - timedelta(days=1)
    while day <= end.astimezone(UTC).date() + timedelta(days=1):
        for event, is_dawn in ((dawn, True), (dusk, False)):
            try:
                events.append((event(observer, day, tzinfo=UTC), is_dawn))
            except ValueError:  # polar day or night
                continue
        day += timedelta(days=1)
    events.sort()
    nights: list[tuple[datetime, datetime]] = []
    for (at, is_dawn), (next_at, next_is_dawn) in itertools.pairwise(events):
        if is_dawn or not next_is_dawn:
            continue
        begins, ends = max(at + margin, start), min(next_at - margin, end)
        if begins < ends:
            nights.append((begins, ends))
    return nights


# -- intent: what the operators meant to be dark --------------------------------------------


@dataclass(frozen=True, slots=True)
class IntentWindow:
    """A lamp or cabinet meant to be dark from `starts_at` until `ends_at` (None: open)."""

    starts_at: datetime
    ends_at: datetime | None
    why: str  # "command <id>" or "lockout <id>"

    def covers(self, at: datetime) -> bool:
        """Whether an event time falls inside the window."""
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


class LightingIntent:
    """Commanded-off and maintenance-lockout windows per device, swapped in whole by the store.

    A dark lamp, an open contactor or a dark circuit that such a window explains is the
    operators' intent, not a fault: the rules judge it OK while the window holds.
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[IntentWindow, ...]] = {}

    def replace(self, windows: dict[str, tuple[IntentWindow, ...]]) -> None:
        """Put a freshly loaded set of windows in force (an atomic reference swap)."""
        self._windows = windows

    def explains(self, device_id: str, at: datetime) -> str | None:
        """Why the device is meant to be dark at `at`, or None when it is not."""
        for window in self._windows.get(device_id, ()):
            if window.covers(at):
                return window.why
        return None


INTENT = LightingIntent()


def _location(
    device: DeviceInfo, lat: float | None = None, lon: float | None = None
) -> tuple[float, float] | None:
    """Where the sun is judged: the rule's configured position if set, else the device's."""
    if lat is not None and lon is not None:
        return lat, lon
    if device.lat is None or device.lon is None:
        return None
    return device.lat, device.lon


def rated_power_w(device: DeviceInfo) -> float | None:
    """The lamp's rating from its registry attributes, None when unknown."""
    value = device.attributes.get("rated_power_w")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _lamp(reading: Reading) -> LightingPayload:
    """A lamp reading's payload: its fields are read directly (they are all required)."""
    return _checked(reading.payload, LightingPayload)


def has_supply(payload: LightingPayload, supply_min_v: float) -> bool:
    """The lamp's circuit is live (voltage present and no supply-loss code)."""
    return payload.fault_code != SUPPLY_LOSS_CODE and payload.voltage_v >= supply_min_v


def expected_power_w(payload: LightingPayload, device: DeviceInfo) -> float | None:
    """Rating × reported dim level, None when the rating is unknown."""
    rating = rated_power_w(device)
    return None if rating is None else rating * payload.dim_pct / 100.0


# -- lamp rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class _LampRule:
    """What every lamp rule shares: the kind it judges, and no state unless it says so."""

    kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})

    def initial_state(self) -> Any:
        """Stateless (a rule that keeps a state per lamp overrides this)."""
        return None


class LampOutParams(_Params):
    """A lamp that says it is on but draws less than this share of its expected power."""

    dark_share: float = 0.1
    min_power_w: float = 3.0
    supply_min_v: float = 100.0


@dataclass(frozen=True)
class LampOutRule(_LampRule):
    """Lamp out while it should be lit: on (commanded or by schedule), supply live, no power."""

    name: str = "lamp_out"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.LAMP_OUT})
    params_model: type[BaseModel] = LampOutParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """FAULT when on with live supply and (almost) no power."""
        del state
        params = _checked(params, LampOutParams)
        lamp = _lamp(reading)
        power_w = lamp.power_w
        expected = expected_power_w(lamp, device)
        floor_w = max(params.min_power_w, params.dark_share * (expected or 0.0))
        supplied = has_supply(lamp, params.supply_min_v)
        out = lamp.on and supplied and power_w < floor_w
        # Without supply the lamp cannot be judged: the cabinet's group alarm covers it.
        verdict = Verdict.FAULT if out else Verdict.OK if supplied else Verdict.HOLD
        return (
            Observation(
                AlarmType.LAMP_OUT,
                verdict,
                reading.ts,
                reading.device_id,
                values={
                    "on": lamp.on,
                    "dim_pct": lamp.dim_pct,
                    "voltage_v": lamp.voltage_v,
                    "power_w": power_w,
                },
                message=f"lamp on but drawing {power_w:.0f} W" if out else "",
            ),
        )


class LitByDayParams(_Params):
    """Lit in daylight: at least `margin_min` after civil dawn and before civil dusk."""

    margin_min: float = 20.0
    min_power_w: float = 3.0
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class LitByDayRule(_LampRule):
    """白天亮灯: the lamp draws power while the sun is up at its location."""

    name: str = "lit_by_day"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.LIT_BY_DAY})
    params_model: type[BaseModel] = LitByDayParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """FAULT when lit in daylight (with margin); OK when dark or at night."""
        del state
        params = _checked(params, LitByDayParams)
        where = _location(device, params.lat, params.lon)
        if where is None:
            return ()
        lamp = _lamp(reading)
        lit = lamp.on and lamp.power_w >= params.min_power_w
        if not lit:
            verdict = Verdict.OK
        else:
            phase = SUN.phase(where[0], where[1], reading.ts)
            if _daylight(phase, params.margin_min * 60):
                verdict = Verdict.FAULT
            elif not phase[0]:
                verdict = Verdict.OK  # night
            else:
                verdict = Verdict.HOLD  # around dawn and dusk: lit is allowed, not proof of health
        return (
            Observation(
                AlarmType.LIT_BY_DAY,
                verdict,
                reading.ts,
                reading.device_id,
                values={"on": lamp.on, "dim_pct": lamp.dim_pct, "power_w": lamp.power_w},
                message="lamp lit in daylight" if verdict is Verdict.FAULT else "",
            ),
        )


class DarkAtNightParams(_Params):
    """Reported off at night (at least `margin_min` after civil dusk and before civil dawn)."""

    margin_min: float = 20.0
    supply_min_v: float = 100.0
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class DarkAtNightRule(_LampRule):
    """夜间不亮: the lamp reports `on` false at night with its supply live, and no commanded
    off or maintenance lockout explains it (a lamp that says on but draws nothing is
    lamp_out's business; one without supply the group rules')."""

    name: str = "dark_at_night"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.DARK_AT_NIGHT})
    params_model: type[BaseModel] = DarkAtNightParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """FAULT when off and supplied at night; OK when on, by day or meant to be dark."""
        del state
        params = _checked(params, DarkAtNightParams)
        where = _location(device, params.lat, params.lon)
        if where is None:
            return ()
        lamp = _lamp(reading)
        if lamp.on or INTENT.explains(reading.device_id, reading.ts) is not None:
            verdict = Verdict.OK
        elif not has_supply(lamp, params.supply_min_v):
            verdict = Verdict.HOLD  # the cabinet's trip or circuit alarm judges it
        else:
            phase = SUN.phase(where[0], where[1], reading.ts)
            margin_s = params.margin_min * 60
            if not phase[0] and phase[1] >= margin_s and phase[2] >= margin_s:
                verdict = Verdict.FAULT
            elif phase[0]:
                verdict = Verdict.OK  # day: off is right
            else:
                verdict = Verdict.HOLD  # around dusk and dawn the switching may lag
        return (
            Observation(
                AlarmType.DARK_AT_NIGHT,
                verdict,
                reading.ts,
                reading.device_id,
                values={"on": lamp.on, "voltage_v": lamp.voltage_v, "power_w": lamp.power_w},
                message="lamp off at night with supply present" if verdict is Verdict.FAULT else "",
            ),
        )


class VoltageParams(_Params):
    """Supply voltage band (220 V ± 10 %) with a hysteresis margin to clear."""

    under_v: float = 198.0
    over_v: float = 242.0
    clear_margin_v: float = 4.0
    supply_min_v: float = 100.0


@dataclass(frozen=True)
class VoltageRule(_LampRule):
    """Over- and under-voltage at the lamp; no supply at all is not under-voltage."""

    name: str = "lamp_voltage"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OVER_VOLTAGE, AlarmType.UNDER_VOLTAGE})
    params_model: type[BaseModel] = VoltageParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """One observation per direction."""
        del device, state
        params = _checked(params, VoltageParams)
        lamp = _lamp(reading)
        volts = lamp.voltage_v
        values = {"voltage_v": volts, "on": lamp.on}
        if not has_supply(lamp, params.supply_min_v):
            under = Verdict.HOLD  # no supply at all is the group rule's business
            over = Verdict.HOLD
        else:
            under = (
                Verdict.FAULT
                if volts < params.under_v
                else Verdict.OK
                if volts >= params.under_v + params.clear_margin_v
                else Verdict.HOLD
            )
            over = (
                Verdict.FAULT
                if volts > params.over_v
                else Verdict.OK
                if volts <= params.over_v - params.clear_margin_v
                else Verdict.HOLD
            )
        return (
            Observation(
                AlarmType.UNDER_VOLTAGE,
                under,
                reading.ts,
                reading.device_id,
                values=values,
                message=f"supply {volts:.0f} V below {params.under_v:.0f} V"
                if under is Verdict.FAULT
                else "",
            ),
            Observation(
                AlarmType.OVER_VOLTAGE,
                over,
                reading.ts,
                reading.device_id,
                values=values,
                message=f"supply {volts:.0f} V above {params.over_v:.0f} V"
                if over is Verdict.FAULT
                else "",
            ),
        )


class OverCurrentParams(_Params):
    """Current above `factor` × rating / (voltage × `min_power_factor`)."""

    factor: float = 1.3
    min_power_factor: float = 0.8
    supply_min_v: float = 100.0


@dataclass(frozen=True)
class OverCurrentRule(_LampRule):
    """Over-current for the lamp's rating (a short or a failing driver)."""

    name: str = "over_current"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OVER_CURRENT})
    params_model: type[BaseModel] = OverCurrentParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """FAULT above the limit; nothing without a rating."""
        del state
        params = _checked(params, OverCurrentParams)
        rating = rated_power_w(device)
        lamp = _lamp(reading)
        if rating is None or not has_supply(lamp, params.supply_min_v):
            return ()
        limit_a = params.factor * rating / (lamp.voltage_v * params.min_power_factor)
        amps = lamp.current_a
        return (
            Observation(
                AlarmType.OVER_CURRENT,
                Verdict.FAULT if amps > limit_a else Verdict.OK,
                reading.ts,
                reading.device_id,
                values={
                    "current_a": amps,
                    "voltage_v": lamp.voltage_v,
                    "power_w": lamp.power_w,
                    "limit_a": limit_a,
                },
                message=f"current {amps:.2f} A above {limit_a:.2f} A" if amps > limit_a else "",
            ),
        )


class PowerParams(_Params):
    """Power band around rating × dim: outside [low, high] raises, inside the clear band clears."""

    low_share: float = 0.7
    high_share: float = 1.3
    clear_low_share: float = 0.8
    clear_high_share: float = 1.2
    min_dim_pct: float = 10.0
    supply_min_v: float = 100.0
    dark_share: float = 0.1


@dataclass(frozen=True)
class PowerRule(_LampRule):
    """Power out of band for the rating at the current dim level (degradation, wrong lamp)."""

    name: str = "power_abnormal"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.POWER_ABNORMAL})
    params_model: type[BaseModel] = PowerParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """Judged only while lit with live supply; a dark lamp is lamp_out's business."""
        del state
        params = _checked(params, PowerParams)
        lamp = _lamp(reading)
        expected = expected_power_w(lamp, device)
        if expected is None:
            return ()
        power_w = lamp.power_w
        supplied = has_supply(lamp, params.supply_min_v)
        lit = (
            lamp.on
            and supplied
            and lamp.dim_pct >= params.min_dim_pct
            and power_w >= params.dark_share * expected
        )
        if not supplied:
            verdict = Verdict.HOLD
        elif not lit:
            verdict = Verdict.OK if not lamp.on else Verdict.HOLD
        else:
            share = power_w / expected
            if share < params.low_share or share > params.high_share:
                verdict = Verdict.FAULT
            elif params.clear_low_share <= share <= params.clear_high_share:
                verdict = Verdict.OK
            else:
                verdict = Verdict.HOLD
        return (
            Observation(
                AlarmType.POWER_ABNORMAL,
                verdict,
                reading.ts,
                reading.device_id,
                values={
                    "dim_pct": lamp.dim_pct,
                    "power_w": power_w,
                    "expected_w": round(expected, 1),
                },
                message=f"power {power_w:.0f} W, expected {expected:.0f} W"
                if verdict is Verdict.FAULT
                else "",
            ),
        )


class FlickerParams(_Params):
    """At least `min_switches` on/off changes within `window_s` is flicker."""

    window_s: float = 900.0
    min_switches: int = 6
    clear_switches: int = 1


@dataclass(slots=True)
class FlickerState:
    """The lamp's last on/off state and the times it changed, newest last.

    A list, not a deque: an empty deque takes ~600 bytes and every lamp has this state.
    """

    last_on: bool | None = None
    switches_s: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class FlickerRule(_LampRule):
    """Frequent switching (a failing lamp or controller cycling on and off)."""

    name: str = "flicker"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.FLICKER})
    params_model: type[BaseModel] = FlickerParams

    def initial_state(self) -> FlickerState:
        """No history."""
        return FlickerState()

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """Count state changes in the sliding window."""
        del device
        state = _checked(state, FlickerState)
        params = _checked(params, FlickerParams)
        on = _lamp(reading).on
        ts_s = reading.ts.timestamp()
        if state.last_on is not None and on != state.last_on:
            state.switches_s.append(ts_s)
        state.last_on = on
        del state.switches_s[: bisect.bisect_left(state.switches_s, ts_s - params.window_s)]
        switches = len(state.switches_s)
        if switches >= params.min_switches:
            verdict = Verdict.FAULT
        elif switches <= params.clear_switches:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        return (
            Observation(
                AlarmType.FLICKER,
                verdict,
                reading.ts,
                reading.device_id,
                values={"on": on, "switches": switches, "window_s": params.window_s},
                message=f"{switches} on/off changes in {params.window_s / 60:.0f} min"
                if verdict is Verdict.FAULT
                else "",
            ),
        )


# -- cabinet rule -----------------------------------------------------------------------


class CabinetParams(_Params):
    """Contactor against civil dusk/dawn with a margin; phases below `supply_min_v` are dead."""

    margin_min: float = 20.0
    supply_min_v: float = 100.0
    night_off_is_fault: bool = True


@dataclass(frozen=True)
class CabinetRule:
    """Cabinet door open, contactor against the sun (on by day, off at night), supply lost."""

    name: str = "cabinet"
    kinds: frozenset[Kind] = frozenset({Kind.CABINET})
    alarm_types: frozenset[AlarmType] = frozenset(
        {AlarmType.DOOR_OPEN, AlarmType.CONTACTOR_ANOMALY, AlarmType.SUPPLY_LOSS}
    )
    params_model: type[BaseModel] = CabinetParams

    def initial_state(self) -> None:
        """Stateless."""

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """Three conditions per cabinet reading."""
        del state
        params = _checked(params, CabinetParams)
        cabinet = _checked(reading.payload, CabinetPayload)
        phases_v = (cabinet.voltage_a_v, cabinet.voltage_b_v, cabinet.voltage_c_v)
        door = cabinet.door_open
        on = cabinet.contactor_on
        values = {
            "contactor_on": on,
            "door_open": door,
            "voltage_a_v": cabinet.voltage_a_v,
            "voltage_b_v": cabinet.voltage_b_v,
            "voltage_c_v": cabinet.voltage_c_v,
            "current_a_a": cabinet.current_a_a,
            "current_b_a": cabinet.current_b_a,
            "current_c_a": cabinet.current_c_a,
        }
        dead = all(v < params.supply_min_v for v in phases_v)
        observations = [
            Observation(
                AlarmType.DOOR_OPEN,
                Verdict.FAULT if door else Verdict.OK,
                reading.ts,
                reading.device_id,
                values=values,
                message="cabinet door open",
            ),
            Observation(
                AlarmType.SUPPLY_LOSS,
                Verdict.FAULT if dead else Verdict.OK,
                reading.ts,
                reading.device_id,
                values=values,
                message="no voltage on any phase",
            ),
        ]
        where = _location(device)
        if where is not None:
            margin_s = params.margin_min * 60
            if on and SUN.is_day(where[0], where[1], reading.ts, margin_s):
                verdict, message = Verdict.FAULT, "contactor closed in daylight"
            elif (
                not on
                and params.night_off_is_fault
                and SUN.is_night(where[0], where[1], reading.ts, margin_s)
                and INTENT.explains(reading.device_id, reading.ts) is None
            ):
                verdict, message = Verdict.FAULT, "contactor open at night"
            else:
                verdict, message = Verdict.OK, ""
            observations.append(
                Observation(
                    AlarmType.CONTACTOR_ANOMALY,
                    verdict,
                    reading.ts,
                    reading.device_id,
                    values=values,
                    message=message,
                )
            )
        return observations


# -- group rule -------------------------------------------------------------------------

LAMP_OK = 0
LAMP_DARK = 1
LAMP_NO_SUPPLY = 2


class CabinetDarkParams(_Params):
    """Shares of a cabinet's lamps: dark or unsupplied → trip; a few unsupplied → a circuit."""

    trip_share: float = 0.8
    trip_clear_share: float = 0.3
    circuit_min_lamps: int = 3
    circuit_clear_lamps: int = 1
    supply_min_v: float = 100.0
    min_power_w: float = 3.0


_MEMBER_COVER = frozenset(
    {
        AlarmType.LAMP_OUT,
        AlarmType.DARK_AT_NIGHT,
        AlarmType.UNDER_VOLTAGE,
        AlarmType.POWER_ABNORMAL,
        AlarmType.OFFLINE,
    }
)


def project_lamp(reading: Reading, params: CabinetDarkParams) -> int:
    """A lamp as the group rules see it: LAMP_OK, LAMP_DARK (on, no power) or LAMP_NO_SUPPLY."""
    lamp = _lamp(reading)
    if INTENT.explains(reading.device_id, reading.ts) is not None:
        return LAMP_OK  # switched off or locked out on purpose
    if not has_supply(lamp, params.supply_min_v):
        return LAMP_NO_SUPPLY
    if lamp.on and lamp.power_w < params.min_power_w:
        return LAMP_DARK
    return LAMP_OK


@dataclass(frozen=True, slots=True)
class CabinetCount:
    """How many of a cabinet's lamps are down, and which."""

    members: int
    no_supply: tuple[str, ...]
    dark: tuple[str, ...]

    @property
    def down_share(self) -> float:
        """Share of members dark or without supply."""
        return (len(self.no_supply) + len(self.dark)) / max(1, self.members)

    def tripped(self, params: CabinetDarkParams) -> bool:
        """Most of the cabinet is down: a trip, not a circuit."""
        return self.down_share >= params.trip_share and self.members >= params.circuit_min_lamps

    def values(self) -> dict[str, object]:
        """Counts for the evidence."""
        return {"members": self.members, "no_supply": len(self.no_supply), "dark": len(self.dark)}

    def details(self) -> dict[str, object]:
        """Lamp ids for the evidence (at most 50 of each)."""
        return {"no_supply_lamps": list(self.no_supply[:50]), "dark_lamps": list(self.dark[:50])}


def count_cabinet(group: GroupView) -> CabinetCount:
    """Count the members' projected states."""
    if INTENT.explains(group.group_id, group.ts) is not None:
        # the cabinet is off or locked out on purpose: its dark lamps are no trip
        return CabinetCount(members=len(group.member_ids), no_supply=(), dark=())
    return CabinetCount(
        members=len(group.member_ids),
        no_supply=tuple(m for m in group.member_ids if group.latest.get(m) == LAMP_NO_SUPPLY),
        dark=tuple(m for m in group.member_ids if group.latest.get(m) == LAMP_DARK),
    )


@dataclass(frozen=True)
class CabinetTripRule:
    """One alarm for a cabinet whose lamps went dark or lost supply together (breaker trip)."""

    name: str = "cabinet_trip"
    member_kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.CABINET_TRIP})
    suppresses: frozenset[AlarmType] = _MEMBER_COVER
    params_model: type[BaseModel] = CabinetDarkParams

    def project(self, reading: Reading, params: Any) -> object:
        """The lamp's supply/dark state."""
        return project_lamp(reading, _checked(params, CabinetDarkParams))

    def evaluate_group(self, group: GroupView, params: Any) -> Iterable[Observation]:
        """FAULT when most lamps are down."""
        params = _checked(params, CabinetDarkParams)
        count = count_cabinet(group)
        if count.members == 0:
            return ()
        if count.tripped(params):
            verdict = Verdict.FAULT
        elif count.down_share <= params.trip_clear_share:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        down = len(count.no_supply) + len(count.dark)
        return (
            Observation(
                AlarmType.CABINET_TRIP,
                verdict,
                group.ts,
                group.group_id,
                values=count.values(),
                message=f"{down} of {count.members} lamps of cabinet {group.group_id} dark",
                details=count.details(),
            ),
        )


@dataclass(frozen=True)
class CircuitDarkRule:
    """One alarm for a cabinet with some lamps (a circuit) without supply, short of a trip."""

    name: str = "circuit_dark"
    member_kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.CIRCUIT_DARK})
    suppresses: frozenset[AlarmType] = _MEMBER_COVER
    params_model: type[BaseModel] = CabinetDarkParams

    def project(self, reading: Reading, params: Any) -> object:
        """The lamp's supply/dark state."""
        return project_lamp(reading, _checked(params, CabinetDarkParams))

    def evaluate_group(self, group: GroupView, params: Any) -> Iterable[Observation]:
        """FAULT when `circuit_min_lamps` or more lamps lost supply, short of a trip."""
        params = _checked(params, CabinetDarkParams)
        count = count_cabinet(group)
        if count.members == 0:
            return ()
        lost = len(count.no_supply)
        if count.tripped(params):
            verdict = Verdict.OK  # the trip alarm says it all
        elif lost >= params.circuit_min_lamps:
            verdict = Verdict.FAULT
        elif lost <= params.circuit_clear_lamps:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        return (
            Observation(
                AlarmType.CIRCUIT_DARK,
                verdict,
                group.ts,
                group.group_id,
                values=count.values(),
                message=f"{lost} lamps of cabinet {group.group_id} without supply",
                details=count.details(),
            ),
        )


RULES: tuple[Rule, ...] = (
    LampOutRule(),
    LitByDayRule(),
    DarkAtNightRule(),
    VoltageRule(),
    OverCurrentRule(),
    PowerRule(),
    FlickerRule(),
    CabinetRule(),
)
GROUP_RULES: tuple[GroupRule, ...] = (CabinetTripRule(), CircuitDarkRule())
