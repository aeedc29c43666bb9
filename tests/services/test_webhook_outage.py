"""The case webhook down for a simulated hour: afterwards every event arrives once, in order.

The forwarder's real `run` loop drives the simulation: its stop event's `wait` advances a
fake clock instead of sleeping, and the world (cases moving through the workflow, the
receiver refusing connections, then answering 503, then coming back) follows that clock.
"""

import sys
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

import httpx
import psycopg
import pytest

from hub.cases.workflow import Action, Role
from hub.cli.local_stack import free_port
from hub.services.case_forwarder import CaseForwarder, WebhookDelivery
from hub.settings import Settings
from hub.store.cases import CaseStore
from hub.store.database import Database
from hub.store.outbox import DeliveryOutcome, Outbox, OutboxItem, OutboxTarget
from tests.services.test_case_forwarder import SECRET, Receiver
from tests.store.cases.case_fixtures import T0, Step, case_setup, hotline_report

pytestmark = pytest.mark.integration

REFUSED_UNTIL = timedelta(minutes=30)  # nothing listens: connection refused
OUTAGE_END = timedelta(hours=1)  # until then the receiver answers 503
CASES = 6
POLL_S = 1.0  # the forwarder's production poll interval

# Reported, sent back for rework once, given an extension, and closed: 15 events a case.
LONG_PATH: tuple[Step, ...] = (
    (Action.REGISTER, Role.INTAKE_OPERATOR, {}),
    (Action.DISPATCH, Role.DISPATCHER, {"department": "drainage"}),
    (Action.ACCEPT, Role.DEPARTMENT, {}),
    (Action.REQUEST_EXTENSION, Role.DEPARTMENT, {"extension_h": 24, "note": "parts on order"}),
    (Action.APPROVE_EXTENSION, Role.DISPATCHER, {}),
    (Action.FEEDBACK, Role.DEPARTMENT, {"note": "cover replaced"}),
    (Action.SEND_FOR_VERIFICATION, Role.INTAKE_OPERATOR, {}),
    (Action.VERIFY_FAIL, Role.INSPECTOR, {"note": "cover rocks"}),
    (Action.DISPATCH, Role.DISPATCHER, {}),
    (Action.ACCEPT, Role.DEPARTMENT, {}),
    (Action.FEEDBACK, Role.DEPARTMENT, {"note": "cover seated"}),
    (Action.SEND_FOR_VERIFICATION, Role.INTAKE_OPERATOR, {}),
    (Action.VERIFY_PASS, Role.INSPECTOR, {}),
    (Action.CLOSE, Role.SHIFT_LEADER, {}),
)
EVENTS_PER_CASE = 1 + len(LONG_PATH)


class FakeClock:
    """Simulated UTC time that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt as the forwarder made it, at simulated time."""

    at: datetime
    key: str
    delivered: bool
    error: str


class RecordingDelivery:
    """The real webhook delivery, with every attempt written down."""

    def __init__(self, inner: WebhookDelivery, clock: FakeClock) -> None:
        self._inner = inner
        self._clock = clock
        self.target = inner.target
        self.attempts: list[Attempt] = []

    def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        """Deliver through the real client and record the outcome."""
        outcome = self._inner.deliver(item)
        self.attempts.append(
            Attempt(self._clock(), item.idempotency_key, outcome.delivered, outcome.error)
        )
        return outcome


class SimulatedTime(threading.Event):
    """The forwarder's stop event: waiting advances the clock and lets the world move."""

    def __init__(self, clock: FakeClock, world: Callable[[datetime], None], end: datetime) -> None:
        super().__init__()
        self._clock = clock
        self._world = world
        self._end = end
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        """Jump `timeout` seconds ahead instead of sleeping; set once the scenario is over."""
        assert timeout is not None, "the forwarder must never wait without a timeout"
        self.waits += 1
        self._clock.now += timedelta(seconds=timeout)
        self._world(self._clock.now)
        if self._clock.now >= self._end:
            self.set()
        return self.is_set()


class World:
    """Cases acted on at their scheduled times, and the receiver's three phases."""

    def __init__(self, store: CaseStore, receiver: Receiver) -> None:
        self._store = store
        self._receiver = receiver
        self._phase = "refused"
        self.case_ids: list[int] = []
        # Case i is reported at 2 + 7i minutes, then takes a step every 4 minutes, so
        # the early cases finish inside the outage and the late ones after it.
        self._agenda = sorted(
            (timedelta(minutes=2 + 7 * i + 4 * step), i, step)
            for i in range(CASES)
            for step in range(EVENTS_PER_CASE)
        )
        self.last_action_at = T0 + self._agenda[-1][0]

    def __call__(self, now: datetime) -> None:
        """Bring the world up to `now`."""
        elapsed = now - T0
        if self._phase == "refused" and elapsed >= REFUSED_UNTIL:
            self._receiver.fail_first = sys.maxsize  # listening again, but only 503s
            self._receiver.start()
            self._phase = "503"
        if self._phase == "503" and elapsed >= OUTAGE_END:
            self._receiver.fail_first = self._receiver.attempts  # every later request succeeds
            self._phase = "up"
        while self._agenda and self._agenda[0][0] <= elapsed:
            _, case, step = self._agenda.pop(0)
            if step == 0:
                self.case_ids.append(self._store.report(hotline_report(), now).id)
            else:
                action, role, payload = LONG_PATH[step - 1]
                self._store.act(self.case_ids[case], action, role, now, payload)


def retry_delay_s(failures: int, base_s: float, longest_s: float) -> float:
    """The backoff the forwarder promises after `failures` failed attempts."""
    return min(longest_s, base_s * 2.0 ** (failures - 1))


def attempts_allowed(window_s: float, base_s: float, longest_s: float) -> int:
    """The most attempts at one event that backoff allows within a window from the first."""
    attempts, spent_s = 1, 0.0
    while spent_s + retry_delay_s(attempts, base_s, longest_s) <= window_s:
        spent_s += retry_delay_s(attempts, base_s, longest_s)
        attempts += 1
    return attempts


def test_an_hour_long_outage_delivers_every_event_once_in_order_afterwards(
    db: Database, database_url: str
) -> None:
    settings = Settings()
    base_s, longest_s = settings.case_retry_base_s, settings.case_retry_max_s
    clock = FakeClock(T0)
    receiver = Receiver(free_port())  # not started: connections are refused
    store = CaseStore(db, case_setup(), [OutboxTarget("webhook")])
    world = World(store, receiver)
    end = max(world.last_action_at, T0 + OUTAGE_END) + timedelta(seconds=longest_s + 60)
    client = httpx.Client(timeout=5.0)
    delivery = RecordingDelivery(WebhookDelivery(client, receiver.url, SECRET), clock)
    forwarder = CaseForwarder(
        Outbox(db),
        [delivery],
        retry_base=timedelta(seconds=base_s),
        retry_longest=timedelta(seconds=longest_s),
        poll_s=POLL_S,
        clock=clock,
    )
    simulated = SimulatedTime(clock, world, end)
    try:
        forwarder.run(simulated)
    finally:
        receiver.stop()
        client.close()

    outage_end = T0 + OUTAGE_END
    during = [a for a in delivery.attempts if a.at < outage_end]
    # The outage really was one: refused connections first, then 503s, nothing delivered.
    assert not any(a.delivered for a in during)
    assert any("ConnectError" in a.error for a in during if a.at < T0 + REFUSED_UNTIL)
    assert any(a.error.startswith("HTTP 503") for a in during if a.at >= T0 + REFUSED_UNTIL)
    assert receiver.attempts > len(receiver.accepted) > 0

    # Every event of every case arrived exactly once, signed, and in order per case.
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, created_at, delivered_at FROM outbox ORDER BY id"
        ).fetchall()
    assert len(rows) == CASES * EVENTS_PER_CASE
    keys = [key for key, _ in receiver.accepted]
    assert sorted(keys) == sorted(str(r[0]) for r in rows)
    assert len(set(keys)) == len(keys)
    assert receiver.bad_signatures == 0
    seqs_by_case: dict[int, list[int]] = defaultdict(list)
    for key, body in receiver.accepted:
        case, event = body["case"], body["event"]
        assert isinstance(case, dict)
        assert isinstance(event, dict)
        assert key == f"webhook:{case['case_number']}:{event['seq']}"
        seqs_by_case[int(case["id"])].append(int(event["seq"]))
    assert sorted(seqs_by_case) == sorted(world.case_ids)
    for seqs in seqs_by_case.values():
        assert seqs == list(range(1, EVENTS_PER_CASE + 1))

    # Once back, the backlog waits at most one longest backoff (plus a poll or two).
    for _, created_at, delivered_at in rows:
        assert delivered_at is not None
        waited = delivered_at - max(created_at, outage_end)
        assert waited <= timedelta(seconds=longest_s + 2 * POLL_S)

    # Not a hot loop: each event was retried no sooner than its backoff allows, so the
    # hour cost a few dozen requests where the forwarder polled thousands of times.
    by_key: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in during:
        by_key[attempt.key].append(attempt)
    assert len(by_key) == CASES, "only each case's oldest event is tried while it fails"
    allowed = 0
    for attempts in by_key.values():
        for failures, (before, after) in enumerate(pairwise(attempts), 1):
            gap_s = (after.at - before.at).total_seconds()
            assert gap_s >= retry_delay_s(failures, base_s, longest_s)
        window_s = (outage_end - attempts[0].at).total_seconds()
        allowed += attempts_allowed(window_s, base_s, longest_s)
    assert len(during) <= allowed
    assert len(during) * 10 < OUTAGE_END / timedelta(seconds=POLL_S) <= simulated.waits
