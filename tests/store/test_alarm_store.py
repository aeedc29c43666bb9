"""The alarms table in a real PostgreSQL: dedup under concurrency, lifecycle, people's actions."""

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.devices.kinds import Kind
from hub.rules.alarm_changes import AlarmChange, AlarmChangeKind, AlarmState
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import AlarmSignal, EvidenceSnapshot, SignalAction, SourceKind
from hub.store.alarms import (
    AlarmFilter,
    AlarmNotFoundError,
    AlarmStateError,
    acknowledge_alarm,
    apply_signals,
    clear_alarm,
    list_alarms,
    list_open_alarms,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)


def signal(
    action: SignalAction,
    at_s: float = 0,
    *,
    source_id: str = "mh-1",
    alarm_type: AlarmType = AlarmType.TILT,
    severity: Severity = Severity.MAJOR,
    count: int = 1,
) -> AlarmSignal:
    at = T0 + timedelta(seconds=at_s)
    return AlarmSignal(
        action=action,
        source_kind=SourceKind.DEVICE,
        source_id=source_id,
        alarm_type=alarm_type,
        severity=severity,
        at=at,
        message="cover tilted 14.0°",
        count=count,
        evidence=(EvidenceSnapshot(at, source_id, {"tilt_deg": 14.0, "seen_at": at}),),
        details={"condition_since": at},
    )


def test_two_connections_raising_at_once_leave_one_row(database_url: str) -> None:
    barrier = threading.Barrier(2)
    kinds: list[AlarmChangeKind] = []
    errors: list[Exception] = []

    def raise_alarm() -> None:
        try:
            with psycopg.connect(database_url) as conn:
                barrier.wait(timeout=10)
                changes = apply_signals(conn, [signal(SignalAction.RAISE)], T0)
                kinds.extend(c.kind for c in changes)
        except (psycopg.Error, threading.BrokenBarrierError) as err:  # asserted below
            errors.append(err)

    for _ in range(5):
        threads = [threading.Thread(target=raise_alarm) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        barrier.reset()
    assert not errors
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT count(*), max(count) FROM alarms").fetchone()
    assert rows == (1, 10)
    assert kinds.count(AlarmChangeKind.RAISED) == 1
    assert kinds.count(AlarmChangeKind.UPDATED) == 9


def test_the_database_refuses_a_second_open_alarm(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        apply_signals(conn, [signal(SignalAction.RAISE)], T0)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO alarms (source_kind, source_id, alarm_type, severity, raised_at,"
                " last_seen_at) VALUES ('device', 'mh-1', 'tilt', 'major', now(), now())"
            )


def test_raise_update_clear_and_raise_again(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        raised = apply_signals(conn, [signal(SignalAction.RAISE, count=3)], T0)
        updated = apply_signals(
            conn, [signal(SignalAction.UPDATE, 60, count=7, severity=Severity.CRITICAL)], T0
        )
        cleared = apply_signals(conn, [signal(SignalAction.CLEAR, 120)], T0)
        again = apply_signals(conn, [signal(SignalAction.RAISE, 300)], T0)
        nothing = apply_signals(conn, [signal(SignalAction.CLEAR, 10, source_id="other")], T0)
    assert [c.kind for c in raised + updated + cleared + again] == [
        AlarmChangeKind.RAISED,
        AlarmChangeKind.UPDATED,
        AlarmChangeKind.CLEARED,
        AlarmChangeKind.RAISED,
    ]
    assert nothing == []
    first = cleared[0].alarm
    assert first.count == 7
    assert first.severity is Severity.CRITICAL
    assert first.raised_at == T0
    assert first.last_seen_at == T0 + timedelta(seconds=60)
    assert first.cleared_at == T0 + timedelta(seconds=120)
    assert first.cleared_by is None
    seen_at = (T0 + timedelta(seconds=60)).isoformat()
    assert first.evidence[0]["values"] == {"tilt_deg": 14.0, "seen_at": seen_at}
    assert "clear_evidence" in first.details
    assert again[0].alarm.id != first.id
    assert again[0].alarm.state is AlarmState.ACTIVE


def test_update_after_a_person_cleared_opens_a_new_alarm(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        (raised,) = apply_signals(conn, [signal(SignalAction.RAISE)], T0)
        clear_alarm(conn, raised.alarm.id, "zhang.wei", T0 + timedelta(minutes=1))
        (reopened,) = apply_signals(conn, [signal(SignalAction.UPDATE, 600, count=4)], T0)
    assert reopened.kind is AlarmChangeKind.RAISED
    assert reopened.alarm.id != raised.alarm.id
    assert reopened.alarm.count == 4


def test_acknowledge_and_clear_by_a_person(database_url: str) -> None:
    at = T0 + timedelta(minutes=5)
    with psycopg.connect(database_url) as conn:
        (raised,) = apply_signals(conn, [signal(SignalAction.RAISE)], T0)
        alarm_id = raised.alarm.id
        acked = acknowledge_alarm(conn, alarm_id, "li.na", at, "crew on the way")
        with pytest.raises(AlarmStateError, match=r"already acknowledged by li\.na"):
            acknowledge_alarm(conn, alarm_id, "wang.fang", at)
        cleared = clear_alarm(conn, alarm_id, "li.na", at + timedelta(minutes=30), "cover reset")
        with pytest.raises(AlarmStateError, match=r"cleared by li\.na"):
            clear_alarm(conn, alarm_id, "li.na", at)
        with pytest.raises(AlarmStateError, match="cleared"):
            acknowledge_alarm(conn, alarm_id, "li.na", at)
        with pytest.raises(AlarmNotFoundError):
            acknowledge_alarm(conn, 999_999, "li.na", at)
        # The rules clearing an alarm a person already cleared changes nothing.
        assert apply_signals(conn, [signal(SignalAction.CLEAR, 3600)], T0) == []
    assert acked.kind is AlarmChangeKind.ACKNOWLEDGED
    assert acked.alarm.state is AlarmState.ACKNOWLEDGED
    assert acked.alarm.acknowledged_by == "li.na"
    assert acked.alarm.details["acknowledge_note"] == "crew on the way"
    assert cleared.alarm.state is AlarmState.CLEARED
    assert cleared.alarm.cleared_by == "li.na"
    assert cleared.alarm.details["clear_note"] == "cover reset"


def test_filters(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon) VALUES"
            " ('mh-1', 'manhole', 31.3, 120.6), ('lamp-1', 'lighting', 31.3, 120.6)"
        )
        apply_signals(
            conn,
            [
                signal(SignalAction.RAISE),
                signal(SignalAction.RAISE, source_id="lamp-1", alarm_type=AlarmType.LAMP_OUT),
                signal(
                    SignalAction.RAISE,
                    source_id="mh-1",
                    alarm_type=AlarmType.LOW_BATTERY,
                    severity=Severity.WARNING,
                ),
                signal(SignalAction.CLEAR, 10, source_id="lamp-1", alarm_type=AlarmType.LAMP_OUT),
            ],
            T0,
        )

        def ids(query: AlarmFilter) -> list[tuple[str, str]]:
            return [(a.source_id, a.alarm_type.value) for a in list_alarms(conn, query)]

        assert ids(AlarmFilter(states=[AlarmState.CLEARED])) == [("lamp-1", "lamp_out")]
        assert ids(AlarmFilter(source_id="mh-1")) == [("mh-1", "low_battery"), ("mh-1", "tilt")]
        assert ids(AlarmFilter(severity=Severity.WARNING)) == [("mh-1", "low_battery")]
        assert ids(AlarmFilter(alarm_type=AlarmType.TILT)) == [("mh-1", "tilt")]
        assert len(ids(AlarmFilter(asset_kind=None, source_kind=SourceKind.DEVICE))) == 3
        assert ids(AlarmFilter(asset_kind=Kind.LIGHTING)) == [("lamp-1", "lamp_out")]
        assert {a.source_id for a in list_open_alarms(conn)} == {"mh-1"}


# A signal: (action, source 0-2, type, severity, count, seconds after the previous one).
_signal_specs = st.tuples(
    st.sampled_from(list(SignalAction)),
    st.integers(0, 2),
    st.sampled_from([AlarmType.TILT, AlarmType.COVER_OPEN]),
    st.sampled_from([Severity.MAJOR, Severity.CRITICAL]),
    st.integers(1, 4),
    st.integers(0, 30),
)


def _critical_filed(alarm_type: AlarmType, severity: Severity) -> bool:
    return severity is Severity.CRITICAL


def _table(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    rows = conn.execute(
        "SELECT source_kind, source_id, alarm_type, severity, state, raised_at, last_seen_at,"
        " count, message, cleared_at, evidence, details, filing_due_at, updated_at FROM alarms"
    ).fetchall()
    return sorted(rows, key=repr)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(_signal_specs, min_size=1, max_size=12), min_size=1, max_size=4))
def test_a_batch_of_signals_applies_as_each_signal_alone(
    database_url: str, batches: list[list[tuple[SignalAction, int, AlarmType, Severity, int, int]]]
) -> None:
    """Raises (or updates) of distinct alarms go in one statement: whatever the mix of
    raises, updates and clears, repeated or not, a batch changes the table, and reports
    the changes in order, exactly as its signals applied one at a time."""
    at_s = 0
    signal_batches: list[list[AlarmSignal]] = []
    for specs in batches:
        signal_batches.append([])
        for action, source, alarm_type, severity, count, step_s in specs:
            at_s += step_s
            signal_batches[-1].append(
                signal(
                    action,
                    at_s,
                    source_id=f"mh-{source}",
                    alarm_type=alarm_type,
                    severity=severity,
                    count=count,
                )
            )

    def outcome(one_at_a_time: bool) -> tuple[list[tuple[object, ...]], list[AlarmChange]]:
        changes: list[AlarmChange] = []
        with psycopg.connect(database_url) as conn:
            for batch in signal_batches:
                parts = [[s] for s in batch] if one_at_a_time else [batch]
                for part in parts:
                    changes += apply_signals(conn, part, T0 + timedelta(hours=1), _critical_filed)
            table = _table(conn)
            conn.rollback()
        # ids come from a sequence, which a rollback does not wind back
        return table, [replace(c, alarm=replace(c.alarm, id=0)) for c in changes]

    assert outcome(one_at_a_time=False) == outcome(one_at_a_time=True)


def test_an_alarm_the_policy_never_files_is_decided_at_its_raise(database_url: str) -> None:
    """Without a filing policy's word every raise is due for it; with `files`, a raise it
    never files is not, and becomes due when its severity changes to one it files."""
    with psycopg.connect(database_url) as conn:

        def due(*signals: AlarmSignal) -> list[object]:
            apply_signals(conn, signals, T0, _critical_filed)
            rows = conn.execute(
                "SELECT filing_due_at FROM alarms WHERE state <> 'cleared' ORDER BY source_id"
            ).fetchall()
            return [row[0] for row in rows]

        assert due(
            signal(SignalAction.RAISE, 0), signal(SignalAction.RAISE, 0, source_id="mh-2")
        ) == [None, None]
        assert due(signal(SignalAction.UPDATE, 5, severity=Severity.CRITICAL)) == [
            T0 + timedelta(seconds=5),
            None,
        ]
        apply_signals(conn, [signal(SignalAction.RAISE, 0, source_id="mh-3")], T0)
        row = conn.execute("SELECT filing_due_at FROM alarms WHERE source_id = 'mh-3'").fetchone()
        assert row == (T0,)
