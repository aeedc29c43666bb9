"""Lighting-cabinet rules: the cabinet's own reading (door, contactor against the sun,
supply), and group rules over its lamps that raise ONE `cabinet_trip` when most of them
lost supply or went dark together, or ONE `circuit_dark` when a few lamps (a circuit) lost
supply, instead of one alarm per lamp.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.devices.decode import Reading
from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation, Verdict, epoch_s, observation
from hub.rules.interface import DeviceInfo, GroupView
from hub.rules.lighting_context import (
    INTENT,
    SUN,
    cabinet_payload,
    has_supply,
    lamp_view,
    sun_position,
)
from hub.rules.lighting_params import CabinetDarkParams, CabinetParams, CableTheftParams


@dataclass(frozen=True)
class CabinetRule:
    """Cabinet door open, contactor against the sun (on by day, off at night), supply lost."""

    name: str = "cabinet"
    kinds: frozenset[Kind] = frozenset({Kind.CABINET})
    alarm_types: frozenset[AlarmType] = frozenset(
        {AlarmType.DOOR_OPEN, AlarmType.CONTACTOR_ANOMALY, AlarmType.SUPPLY_LOSS}
    )
    params_model: type[CabinetParams] = CabinetParams

    def initial_state(self) -> None:
        """Stateless."""

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: None, params: CabinetParams
    ) -> Iterable[Observation]:
        """Three conditions per cabinet reading."""
        del state
        cabinet = cabinet_payload(reading)
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
            observation(
                AlarmType.DOOR_OPEN,
                Verdict.FAULT if door else Verdict.OK,
                reading.ts,
                reading.device_id,
                values=values,
                message="cabinet door open",
            ),
            observation(
                AlarmType.SUPPLY_LOSS,
                Verdict.FAULT if dead else Verdict.OK,
                reading.ts,
                reading.device_id,
                values=values,
                message="no voltage on any phase",
            ),
        ]
        where = sun_position(device)
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
                observation(
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
    lamp = lamp_view(reading)
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


def count_cabinet(group: GroupView[int]) -> CabinetCount:
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
    params_model: type[CabinetDarkParams] = CabinetDarkParams

    def project(self, reading: Reading, params: CabinetDarkParams) -> int:
        """The lamp's supply/dark state."""
        return project_lamp(reading, params)

    def evaluate_group(
        self, group: GroupView[int], params: CabinetDarkParams
    ) -> Iterable[Observation]:
        """FAULT when most lamps are down."""
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
            observation(
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
    params_model: type[CabinetDarkParams] = CabinetDarkParams

    def project(self, reading: Reading, params: CabinetDarkParams) -> int:
        """The lamp's supply/dark state."""
        return project_lamp(reading, params)

    def evaluate_group(
        self, group: GroupView[int], params: CabinetDarkParams
    ) -> Iterable[Observation]:
        """FAULT when `circuit_min_lamps` or more lamps lost supply, short of a trip."""
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
            observation(
                AlarmType.CIRCUIT_DARK,
                verdict,
                group.ts,
                group.group_id,
                values=count.values(),
                message=f"{lost} lamps of cabinet {group.group_id} without supply",
                details=count.details(),
            ),
        )


# -- cable theft -------------------------------------------------------------------------

_PHASES = ("a", "b", "c")


@dataclass(slots=True)
class CableTheftState:
    """Per cabinet: the load each phase carried while lit, which phases lost it, and when."""

    load_a: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    lost: list[bool] = field(default_factory=lambda: [False, False, False])
    last_ts_s: float | None = None


@dataclass(frozen=True)
class CableTheftRule:
    """Sudden loss of a circuit's (phase's) current at night with the contactor closed and the
    phase's voltage present: the cable downstream was cut or stolen (or that circuit's own
    breaker tripped: the cabinet's meter cannot tell the two apart). Every loaded phase lost
    at once is a trip (cabinet_trip's business), not theft; a commanded off or a lockout on
    the cabinet, or on some of its lamps (a circuit), explains it."""

    name: str = "cable_theft"
    kinds: frozenset[Kind] = frozenset({Kind.CABINET})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.CABLE_THEFT})
    params_model: type[CableTheftParams] = CableTheftParams

    def initial_state(self) -> CableTheftState:
        """No load seen yet."""
        return CableTheftState()

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: CableTheftState, params: CableTheftParams
    ) -> Iterable[Observation]:
        """Follow each phase's load; FAULT while some, not all, loaded phases lost it."""
        cabinet = cabinet_payload(reading)
        ts_s = epoch_s(reading.ts)
        sudden = state.last_ts_s is not None and ts_s - state.last_ts_s <= params.sudden_s
        state.last_ts_s = ts_s
        where = sun_position(device)
        lit = (
            cabinet.contactor_on
            and where is not None
            and SUN.is_night(where[0], where[1], reading.ts, params.margin_min * 60)
            and INTENT.explains(reading.device_id, reading.ts) is None
            # a circuit locked out or commanded dark loses its current on purpose
            and INTENT.explains_some(reading.device_id, reading.ts) is None
        )
        volts = (cabinet.voltage_a_v, cabinet.voltage_b_v, cabinet.voltage_c_v)
        amps = (cabinet.current_a_a, cabinet.current_b_a, cabinet.current_c_a)
        if not lit:
            state.lost = [False, False, False]
            state.load_a = [0.0, 0.0, 0.0]
            return (self._observation(reading, Verdict.OK, volts, amps, state, ""),)
        for phase in range(3):
            load, now_a = state.load_a[phase], amps[phase]
            if volts[phase] < params.supply_min_v:
                state.lost[phase] = False  # no supply: a supply fault, not theft
                continue
            if state.lost[phase]:
                if now_a >= params.restore_share * load:
                    state.lost[phase], state.load_a[phase] = False, now_a
            elif (
                sudden
                and load >= params.min_load_a
                and now_a <= params.lost_share * load
                and now_a <= params.lost_max_a
            ):
                state.lost[phase] = True  # keep the load it had as the reference
            else:
                state.load_a[phase] = now_a
        lost = [p for p in range(3) if state.lost[p]]
        loaded = [p for p in range(3) if state.load_a[p] >= params.min_load_a or state.lost[p]]
        if not lost:
            verdict, message = Verdict.OK, ""
        elif len(lost) == len(loaded):
            verdict, message = Verdict.HOLD, ""  # everything dark at once: a trip
        else:
            names = ", ".join(_PHASES[p] for p in lost)
            verdict = Verdict.FAULT
            message = f"phase {names} current lost with supply present: possible cable theft"
        return (self._observation(reading, verdict, volts, amps, state, message),)

    @staticmethod
    def _observation(
        reading: Reading,
        verdict: Verdict,
        volts: tuple[float, float, float],
        amps: tuple[float, float, float],
        state: CableTheftState,
        message: str,
    ) -> Observation:
        values: dict[str, object] = {}
        for p, phase in enumerate(_PHASES):
            values[f"voltage_{phase}_v"] = volts[p]
            values[f"current_{phase}_a"] = amps[p]
        details = {
            "lost_phases": [_PHASES[p] for p in range(3) if state.lost[p]],
            "load_before_a": {
                _PHASES[p]: round(state.load_a[p], 2) for p in range(3) if state.lost[p]
            },
        }
        return observation(
            AlarmType.CABLE_THEFT,
            verdict,
            reading.ts,
            reading.device_id,
            values=values,
            message=message,
            details=details if verdict is Verdict.FAULT else {},
        )
