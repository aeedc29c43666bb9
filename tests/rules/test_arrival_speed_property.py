"""Property: the same readings give the same alarms and cases whatever their arrival pattern.

A generated night of a lighting cabinet with its lamps and two manhole covers (the packaged
rules and filing policy) is played three ways: paced (each minute's readings as they come,
the clock ticking), in batches of random sizes (as a busy hub commits them) and as one
backlog after an outage. The alarms (type, source, raised and cleared in event time) and
the cases they file into must be identical. Filing follows the store's semantics
(`hub/store/alarms.py`, `hub/store/cases.py`) on the engine's event clock.
"""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.cases.classification import load_classification
from hub.cases.routing import FilingOutcome, JoinScope, decide_filing, load_case_policy
from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.lighting import CabinetPayload, LightingPayload
from hub.devices.manholes import ManholePayload
from hub.rules import lighting, manholes
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.signals import AlarmSignal, SignalAction, SourceKind

# 22:00 in Nanjing: lamps are on, a contactor open is an anomaly.
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WHERE = (32.05, 118.78)
STEP_S = 60
CABINET = "CAB-1"
LAMPS = tuple(f"LMP-{n}" for n in range(1, 7))
COVERS = ("MH-1", "MH-2")
# Devices' clocks and report slots differ: no two readings share an instant.
OFFSET_MS = {d: 97 * n for n, d in enumerate((CABINET, *LAMPS, *COVERS), start=1)}
POLICY = load_case_policy()
CLASSES = load_classification()


def _devices() -> list[DeviceInfo]:
    lamp_attributes = {"rated_power_w": 100}
    return [
        DeviceInfo(CABINET, Kind.CABINET, lat=WHERE[0], lon=WHERE[1]),
        *(
            DeviceInfo(d, Kind.LIGHTING, CABINET, lamp_attributes, WHERE[0], WHERE[1])
            for d in LAMPS
        ),
        *(DeviceInfo(d, Kind.MANHOLE, lat=WHERE[0], lon=WHERE[1]) for d in COVERS),
    ]


@dataclass(frozen=True, slots=True)
class Scenario:
    """Minutes of one night and the faults in it, as [first, last) minute ranges."""

    minutes: int
    trip: tuple[int, int] | None
    lamp_out: tuple[int, int, int] | None  # lamp index, first, last
    tilt: tuple[int, int, int] | None  # cover index, first, last


def _within(span: tuple[int, int] | None, minute: int) -> bool:
    return span is not None and span[0] <= minute < span[1]


def _ts(device_id: str, minute: int, start: datetime = START) -> datetime:
    return start + timedelta(seconds=minute * STEP_S, milliseconds=OFFSET_MS[device_id])


def _ms(ts: datetime) -> int:
    return round(ts.timestamp() * 1000)


def readings_of(scenario: Scenario, start: datetime = START) -> list[Reading]:
    """Every reading of the scenario in event-time order (received: to be set by the play)."""
    out: list[Reading] = []
    for minute in range(scenario.minutes):
        tripped = _within(scenario.trip, minute)
        ts = _ts(CABINET, minute, start)
        phase_v = 0.0 if tripped else 230.0
        cabinet = CabinetPayload(
            ts=_ms(ts),
            contactor_on=not tripped,
            door_open=False,
            voltage_a_v=phase_v,
            voltage_b_v=phase_v,
            voltage_c_v=phase_v,
            current_a_a=0.0 if tripped else 3.0,
            current_b_a=0.0 if tripped else 3.0,
            current_c_a=0.0 if tripped else 3.0,
            power_w=0.0 if tripped else 600.0,
            energy_kwh=100.0 + minute,
        )
        out.append(Reading(Kind.CABINET, CABINET, Channel.TELEMETRY, ts, ts, cabinet))
        for index, lamp_id in enumerate(LAMPS):
            ts = _ts(lamp_id, minute, start)
            out_here = scenario.lamp_out is not None and (
                scenario.lamp_out[0] == index
                and _within((scenario.lamp_out[1], scenario.lamp_out[2]), minute)
            )
            dark = tripped or out_here
            lamp = LightingPayload(
                ts=_ms(ts),
                on=True,
                dim_pct=100,
                voltage_v=0.0 if tripped else 230.0,
                current_a=0.0 if dark else 0.45,
                power_w=0.0 if dark else 100.0,
                power_factor=0.95,
                energy_kwh=10.0 + minute,
            )
            out.append(Reading(Kind.LIGHTING, lamp_id, Channel.TELEMETRY, ts, ts, lamp))
        for index, cover_id in enumerate(COVERS):
            ts = _ts(cover_id, minute, start)
            tilted = scenario.tilt is not None and (
                scenario.tilt[0] == index and _within((scenario.tilt[1], scenario.tilt[2]), minute)
            )
            cover = ManholePayload(ts=_ms(ts), tilt_deg=25.0 if tilted else 1.0, cover_open=False)
            out.append(Reading(Kind.MANHOLE, cover_id, Channel.TELEMETRY, ts, ts, cover))
    return sorted(out, key=lambda r: r.ts)


@dataclass(slots=True)
class Alarm:
    """An alarm row as the store keeps it."""

    id: int
    source_kind: SourceKind
    source_id: str
    alarm_type: AlarmType
    severity: Severity
    raised_at: datetime
    cleared_at: datetime | None = None
    filing_due_at: datetime | None = None
    case: int | None = None


@dataclass(slots=True)
class Store:
    """Alarms and cases with the store's semantics: one open alarm per (source, type);
    filing due in event time; a cleared alarm is still filed if it was due before it
    cleared; joining by the policy's table."""

    alarms: list[Alarm] = field(default_factory=list)
    cases: dict[int, list[int]] = field(default_factory=dict)

    def _open(self, source_id: str, alarm_type: AlarmType) -> Alarm | None:
        for alarm in self.alarms:
            same = alarm.source_id == source_id and alarm.alarm_type is alarm_type
            if same and alarm.cleared_at is None:
                return alarm
        return None

    def apply(self, signals: list[AlarmSignal]) -> None:
        for signal in signals:
            alarm = self._open(signal.source_id, signal.alarm_type)
            if signal.action is SignalAction.CLEAR:
                if alarm is not None:
                    alarm.cleared_at = max(alarm.raised_at, signal.at)
                    due = alarm.filing_due_at
                    if alarm.case is not None or due is None or alarm.cleared_at < due:
                        alarm.filing_due_at = None
            elif alarm is None:
                self.alarms.append(
                    Alarm(
                        len(self.alarms) + 1,
                        signal.source_kind,
                        signal.source_id,
                        signal.alarm_type,
                        signal.severity,
                        signal.at,
                        filing_due_at=signal.at,
                    )
                )

    def file_due(self, event_now: datetime) -> None:
        due = sorted(
            (
                a
                for a in self.alarms
                if a.filing_due_at is not None
                and a.filing_due_at <= event_now
                and a.case is None
                and (a.cleared_at is None or a.cleared_at >= a.filing_due_at)
            ),
            key=lambda a: (a.filing_due_at, a.id),
        )
        for alarm in due:
            held_to = event_now if alarm.cleared_at is None else min(event_now, alarm.cleared_at)
            decision = decide_filing(
                POLICY,
                CLASSES,
                alarm_type=alarm.alarm_type,
                severity=alarm.severity,
                active_since_at=alarm.raised_at,
                now_at=held_to,
            )
            if decision.outcome is FilingOutcome.SKIP:
                alarm.filing_due_at = None
            elif decision.outcome is FilingOutcome.WAIT:
                alarm.filing_due_at = decision.file_at
            else:
                alarm.filing_due_at = None
                alarm.case = self._join(alarm) or self._new_case()
                self.cases[alarm.case].append(alarm.id)

    def _new_case(self) -> int:
        number = len(self.cases) + 1
        self.cases[number] = []
        return number

    def _join(self, alarm: Alarm) -> int | None:
        parent = CABINET if alarm.source_id in LAMPS else None
        for lookup in POLICY.join_lookups(alarm.alarm_type):
            source_id = alarm.source_id if lookup.scope is JoinScope.SOURCE else parent
            found = [
                a.case
                for a in self.alarms
                if a.case is not None
                and a.source_id == source_id
                and a.alarm_type in lookup.alarm_types
            ]
            if found:
                return max(found)
        return None

    def outcome(self) -> tuple[list[tuple[object, ...]], list[list[tuple[object, ...]]]]:
        """Alarms as (kind, source, type, raised, cleared) and cases as lists of them."""

        def key(alarm: Alarm) -> tuple[object, ...]:
            return (
                alarm.source_kind.value,
                alarm.source_id,
                alarm.alarm_type.value,
                alarm.raised_at,
                alarm.cleared_at,
            )

        by_id = {a.id: a for a in self.alarms}
        alarms = sorted((key(a) for a in self.alarms), key=repr)
        cases = sorted(
            (sorted((key(by_id[i]) for i in ids), key=repr) for ids in self.cases.values()),
            key=repr,
        )
        return alarms, cases


def play(readings: list[Reading], batches: list[list[int]]) -> Store:
    """Run batches of reading indexes, each received when its newest reading was taken
    (or, for the backlog, an hour later), through engine and filing; tick after each."""
    engine = RuleEngine(
        load_rules_config(),
        _devices(),
        now=START,
        rules=(*lighting.RULES, *manholes.RULES),
        group_rules=lighting.GROUP_RULES,
    )
    store = Store()
    for batch in batches:
        received = max(readings[i].ts for i in batch)
        if len(batches) == 1:
            received += timedelta(hours=1)
        arrived = [readings[i]._replace(received_at=received) for i in batch]
        signals = engine.process(arrived)
        signals += engine.tick(received)
        store.apply(signals)
        store.file_due(engine.event_clock(received))
    return store


def _paced(readings: list[Reading]) -> list[list[int]]:
    """One batch per minute of the scenario."""
    by_minute = itertools.groupby(
        range(len(readings)), key=lambda i: int((readings[i].ts - START).total_seconds() // 60)
    )
    return [list(group) for _, group in by_minute]


def _cut(count: int, cuts: list[int]) -> list[list[int]]:
    bounds = sorted({0, count, *(c % (count + 1) for c in cuts)})
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds) if b > a]


minutes = st.integers(min_value=20, max_value=70)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    total = draw(minutes)

    def span() -> tuple[int, int] | None:
        if not draw(st.booleans()):
            return None
        first = draw(st.integers(0, total - 2))
        return first, draw(st.integers(first + 1, total))

    trip = span()
    out = span()
    tilt = span()
    return Scenario(
        total,
        trip,
        None if out is None else (draw(st.integers(0, len(LAMPS) - 1)), *out),
        None if tilt is None else (draw(st.integers(0, len(COVERS) - 1)), *tilt),
    )


@settings(max_examples=40, deadline=None)
@given(scenario=scenarios(), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_arrival_pattern_does_not_change_alarms_or_cases(
    scenario: Scenario, cuts: list[int]
) -> None:
    readings = readings_of(scenario)
    paced = play(readings, _paced(readings)).outcome()
    batched = play(readings, _cut(len(readings), cuts)).outcome()
    backlog = play(readings, [list(range(len(readings)))]).outcome()
    assert batched == paced
    assert backlog == paced


def test_a_night_trip_is_one_cabinet_case_at_any_arrival_speed() -> None:
    # The contactor opens at minute 5 for 40 minutes; one lamp was out before.
    scenario = Scenario(60, (5, 45), (2, 1, 3), None)
    readings = readings_of(scenario)
    for batches in (_paced(readings), [list(range(len(readings)))]):
        alarms, cases = play(readings, batches).outcome()
        trip = [a for a in alarms if a[2] == "cabinet_trip"]
        assert len(trip) == 1
        # 60 s of event time after the fifth of six lamps (over 80 %) went dark
        assert trip[0][3] == _ts(LAMPS[4], 6)
        cabinet_cases = [c for c in cases if any(a[1] == CABINET for a in c)]
        assert len(cabinet_cases) == 1
        assert {a[2] for a in cabinet_cases[0]} >= {"cabinet_trip", "contactor_anomaly"}
        assert not [a for a in alarms if a[2] == "lamp_out"]  # covered, or too short
