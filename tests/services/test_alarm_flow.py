"""The alarm flow with a real PostgreSQL: readings → alarms → cases, ticks, restart, publishing."""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from hub.cases.workflow import Action, CaseStatus
from hub.devices.decode import Reading
from hub.devices.partition import encode_handoff, owner_of
from hub.ingest.metrics import StageCpu
from hub.rules.alarm_changes import AlarmChange, AlarmChangeKind
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.condition import Observation
from hub.rules.interface import DeviceInfo
from hub.services.alarm_flow import AlarmFlow, ClusterSeat
from hub.store.alarms import AlarmStore
from hub.store.cases import CaseStore, FiledAlarm
from hub.store.database import Database
from tests.rules.rule_fixtures import (
    T0,
    TiltParams,
    TiltRule,
    at,
    make_config,
    manhole_reading,
)
from tests.store.cases.case_fixtures import case_setup, offline_filing_setup, register_device

pytestmark = pytest.mark.integration


class FakeClock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingPublisher:
    """An AlarmPublisher that keeps what it was given."""

    def __init__(self) -> None:
        self.changes: list[AlarmChange] = []

    def publish_changes(self, changes: Sequence[AlarmChange]) -> None:
        """Keep the changes."""
        self.changes.extend(changes)

    def kinds(self) -> list[tuple[AlarmChangeKind, AlarmType]]:
        """(change, alarm type) in order."""
        return [(c.kind, c.alarm.alarm_type) for c in self.changes]


class CountingCaseStore(CaseStore):
    """The case store, counting how often the filing policy is run."""

    runs = 0

    def file_due_alarms(self, now: datetime, event_now: datetime | None = None) -> list[FiledAlarm]:
        """Count, then run the policy."""
        self.runs += 1
        return super().file_due_alarms(now, event_now)


class EscalatingTilt(TiltRule):
    """The tilt rule, critical beyond 30°."""

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: None, params: TiltParams
    ) -> Iterable[Observation]:
        """The tilt rule's observation, its severity by the angle."""
        (obs,) = super().evaluate(reading, device, state, params)
        critical = float(reading.value("tilt_deg")) > 30.0
        return (obs._replace(severity=Severity.CRITICAL) if critical else obs,)


def make_flow(
    db: Database,
    clock: FakeClock,
    publisher: RecordingPublisher,
    *,
    offline_cases: bool = False,
    healthy: bool = True,
    cases: CaseStore | None = None,
    rule: TiltRule | None = None,
    stages: StageCpu | None = None,
    cluster: ClusterSeat | None = None,
) -> AlarmFlow:
    setup = offline_filing_setup() if offline_cases else case_setup()
    config = make_config(
        {
            "tilt": {"raise_deg": 10.0, "clear_deg": 8.0},
            "offline": {"expected_interval_s": 60, "missed_reports": 2},
        },
        reorder_tolerance_s=0,
    )
    flow = AlarmFlow(
        db=db,
        alarms=AlarmStore(db),
        cases=cases or CaseStore(db, setup),
        config=config,
        publisher=publisher,
        clock=clock,
        rules=[rule or TiltRule()],
        stay_clear=timedelta(minutes=10),
        registry_refresh_s=0.0,
        ingest_healthy=lambda: healthy,
        stages=stages,
        cluster=cluster,
    )
    flow.start_up()
    return flow


def rows(database_url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query.encode()).fetchall()


def tilt(ts_s: float, tilt_deg: float) -> Reading:
    return manhole_reading("mh-1", ts_s, tilt_deg)


def test_tilt_becomes_a_dispatched_case_and_its_clearance_evidence(
    db: Database, database_url: str
) -> None:
    register_device(database_url, "mh-1", class_code="01003")
    clock = FakeClock(T0)
    publisher = RecordingPublisher()
    flow = make_flow(db, clock, publisher)
    clock.now = at(1)
    flow.process([tilt(0, 3.0), tilt(1, 15.0)])
    flow.process([tilt(30, 16.0)])  # a repeat inside the update interval changes nothing
    assert publisher.kinds() == [(AlarmChangeKind.RAISED, AlarmType.TILT)]
    (case,) = rows(database_url, "SELECT case_number, status, department, alarm_id FROM cases")
    (alarm,) = rows(database_url, "SELECT id, case_id, state FROM alarms")
    assert case[1:] == ("dispatched", "drainage", alarm[0])
    assert alarm[2] == "active"
    clock.now = at(120)
    flow.process([tilt(120, 2.0)])
    assert publisher.kinds()[-1] == (AlarmChangeKind.CLEARED, AlarmType.TILT)
    flow.tick(at(300))  # cleared at 120 s: not clear for 10 minutes yet
    assert rows(database_url, "SELECT count(*) FROM case_events") == [(3,)]
    flow.tick(at(121 + 600))
    events = rows(database_url, "SELECT action, actor_role FROM case_events ORDER BY seq")
    assert events[-1] == (Action.ATTACH_EVIDENCE.value, "system")
    assert rows(database_url, "SELECT status FROM cases") == [(CaseStatus.DISPATCHED.value,)]


def stage_figures(registry: CollectorRegistry, stage: str) -> tuple[float, float]:
    """(CPU seconds, items) counted for a stage."""
    cpu = registry.get_sample_value("hub_stage_cpu_seconds_total", {"stage": stage})
    items = registry.get_sample_value("hub_stage_items_total", {"stage": stage})
    assert cpu is not None
    assert items is not None
    return cpu, items


def test_each_stage_of_the_flow_counts_its_cpu_time_and_what_it_handled(
    db: Database, database_url: str
) -> None:
    register_device(database_url, "mh-1", class_code="01003")
    registry = CollectorRegistry()
    clock = FakeClock(at(1))
    flow = make_flow(db, clock, RecordingPublisher(), stages=StageCpu(registry))
    flow.process([tilt(0, 3.0), tilt(1, 15.0)])  # judged; one alarm raised and stored
    flow.process([tilt(2, 16.0)])  # judged; nothing changes
    flow.tick(at(3))
    rules_cpu, rules_items = stage_figures(registry, "rules")
    alarms_cpu, alarms_items = stage_figures(registry, "alarms")
    assert (rules_items, alarms_items) == (3, 1)  # readings judged, signals applied
    assert rules_cpu > 0
    assert alarms_cpu > 0
    assert stage_figures(registry, "clock")[1] == 1
    assert stage_figures(registry, "hand_off") == (0, 0)  # not in a cluster


def test_a_cluster_member_counts_what_it_hands_on_and_what_is_handed_in(
    db: Database, database_url: str
) -> None:
    # Devices by their owner in a cluster of two; none registered, so owned by their id.
    theirs = [f"mh-{i}" for i in range(40) if owner_of(f"mh-{i}", 2) == 1][:3]
    handed: list[tuple[int, Sequence[Reading]]] = []
    registry = CollectorRegistry()
    flow = make_flow(
        db,
        FakeClock(at(1)),
        RecordingPublisher(),
        stages=StageCpu(registry),
        cluster=ClusterSeat(2, 0, hand_off=lambda member, rs: handed.append((member, rs))),
    )
    flow.process([manhole_reading(device, 0, 1.0) for device in [*theirs, "mh-mine"]])
    assert [(member, len(rs)) for member, rs in handed] == [(1, len(theirs))]
    assert stage_figures(registry, "hand_off")[1] == len(theirs)
    flow.on_handoff(encode_handoff(handed[0][1]))  # as if the other member handed them back
    assert stage_figures(registry, "hand_in")[1] == len(theirs)


def test_a_restart_restores_open_alarms_instead_of_raising_again(
    db: Database, database_url: str
) -> None:
    register_device(database_url, "mh-1")
    clock = FakeClock(at(1))
    first = RecordingPublisher()
    make_flow(db, clock, first).process([tilt(0, 15.0)])
    assert first.kinds() == [(AlarmChangeKind.RAISED, AlarmType.TILT)]
    again = RecordingPublisher()
    restarted = make_flow(db, clock, again)
    restarted.process([tilt(400, 15.0)])  # past the update interval: an update, not a raise
    restarted.process([tilt(500, 1.0)])
    assert again.kinds() == [
        (AlarmChangeKind.UPDATED, AlarmType.TILT),
        (AlarmChangeKind.CLEARED, AlarmType.TILT),
    ]
    assert rows(database_url, "SELECT count(*), max(count) FROM alarms") == [(1, 2)]
    assert rows(database_url, "SELECT count(*) FROM cases") == [(1,)]


def test_the_policy_runs_after_a_batch_that_raises_or_changes_severity_only(
    db: Database, database_url: str
) -> None:
    register_device(database_url, "mh-1", class_code="01003")
    clock = FakeClock(at(1))
    publisher = RecordingPublisher()
    cases = CountingCaseStore(db, case_setup())
    flow = make_flow(db, clock, publisher, cases=cases, rule=EscalatingTilt())
    cases.runs = 0  # start-up runs it once
    flow.process([tilt(0, 15.0)])
    assert (publisher.kinds(), cases.runs) == ([(AlarmChangeKind.RAISED, AlarmType.TILT)], 1)
    flow.process([tilt(400, 16.0)])  # a repeat past the update interval: nothing to decide
    assert (publisher.kinds()[-1], cases.runs) == ((AlarmChangeKind.UPDATED, AlarmType.TILT), 1)
    flow.process([tilt(500, 40.0)])  # critical now: the store asks the policy again
    assert publisher.changes[-1].alarm.severity is Severity.CRITICAL
    assert (publisher.kinds()[-1], cases.runs) == ((AlarmChangeKind.UPDATED, AlarmType.TILT), 2)
    flow.tick(at(501))  # the tick always looks
    assert cases.runs == 3
    assert rows(database_url, "SELECT count(*) FROM cases") == [(1,)]


def test_offline_is_judged_on_ticks_and_filed_by_policy(db: Database, database_url: str) -> None:
    register_device(database_url, "mh-1", class_code="01003")
    clock = FakeClock(T0)
    publisher = RecordingPublisher()
    stalled = make_flow(db, clock, publisher, offline_cases=True, healthy=False)
    stalled.tick(at(600))
    assert publisher.changes == []  # ingest is stalled: silence proves nothing
    flow = make_flow(db, clock, publisher, offline_cases=True)
    flow.process([tilt(0, 1.0)])
    flow.tick(at(60))
    assert publisher.changes == []
    flow.tick(at(121))
    assert publisher.kinds() == [(AlarmChangeKind.RAISED, AlarmType.OFFLINE)]
    assert rows(database_url, "SELECT class_code, status FROM cases") == [("01003", "dispatched")]
    flow.process([manhole_reading("mh-1", 200, 1.0, received_s=200)])
    assert publisher.kinds()[-1] == (AlarmChangeKind.CLEARED, AlarmType.OFFLINE)


def test_devices_registered_later_are_judged_too(db: Database, database_url: str) -> None:
    clock = FakeClock(T0)
    publisher = RecordingPublisher()
    flow = make_flow(db, clock, publisher)
    register_device(database_url, "mh-late")
    assert flow.engine.device_params("mh-late", "offline") is None
    flow.tick(at(1))
    assert flow.engine.device_params("mh-late", "offline") is not None
    flow.process([manhole_reading("mh-late", 2, 15.0)])
    assert publisher.kinds() == [(AlarmChangeKind.RAISED, AlarmType.TILT)]
