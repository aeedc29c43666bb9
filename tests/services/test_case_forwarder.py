"""Outbox delivery to a real local HTTP server that fails, goes away and comes back."""

import hashlib
import hmac
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import orjson
import psycopg
import pytest

from hub.cases.workflow import Action, Role
from hub.cli.local_stack import free_port
from hub.services.case_forwarder import CaseForwarder, Open311Delivery, WebhookDelivery
from hub.store.cases import CaseStore
from hub.store.database import Database
from hub.store.outbox import Outbox, OutboxTarget
from tests.hub_process import wait_for
from tests.store.cases.case_fixtures import TO_CLOSED, at, case_setup, hotline_report

pytestmark = pytest.mark.integration

SECRET = b"webhook-secret"


class Receiver:
    """An external case system: records deliveries; fails the first `fail_first` requests."""

    def __init__(self, port: int, fail_first: int = 0, answer: bytes = b"{}") -> None:
        self.port = port
        self.fail_first = fail_first
        self.answer = answer
        self.attempts = 0
        self.accepted: list[tuple[str, dict[str, object]]] = []
        self.forms: list[dict[str, list[str]]] = []
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen on the port (again)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.attempts += 1
                    if receiver.attempts <= receiver.fail_first:
                        self.send_response(503)
                        self.end_headers()
                        self.wfile.write(b"busy")
                        return
                    if self.headers.get("Content-Type") == "application/json":
                        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                        if self.headers.get("X-Hub-Signature-256") != expected:
                            receiver.bad_signatures += 1
                        key = str(self.headers.get("Idempotency-Key"))
                        receiver.accepted.append((key, orjson.loads(body)))
                    else:
                        receiver.forms.append(parse_qs(body.decode()))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(receiver.answer)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until `start` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        """The webhook URL."""
        return f"http://127.0.0.1:{self.port}/cases"


class RunningForwarder:
    """A forwarder on its own thread, stopped like a process would be."""

    def __init__(self, forwarder: CaseForwarder) -> None:
        self.forwarder = forwarder
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=forwarder.run, args=(self.stop_event,))
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)


def webhook_forwarder(db: Database, client: httpx.Client, url: str) -> RunningForwarder:
    return RunningForwarder(
        CaseForwarder(
            Outbox(db),
            [WebhookDelivery(client, url, SECRET)],
            retry_base=timedelta(seconds=0.05),
            retry_longest=timedelta(seconds=0.2),
            poll_s=0.05,
        )
    )


def pending(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def test_every_event_delivered_once_in_order_across_failures_and_restarts(
    db: Database, database_url: str
) -> None:
    store = CaseStore(db, case_setup(), [OutboxTarget("webhook")])
    case_ids = [store.report(hotline_report(), at(i)).id for i in range(3)]
    for minute, (action, role, payload) in enumerate(TO_CLOSED[:3], start=10):
        for case_id in case_ids:
            store.act(case_id, action, role, at(minute), payload)
    receiver = Receiver(free_port(), fail_first=4)
    receiver.start()
    client = httpx.Client(timeout=2.0)
    running = webhook_forwarder(db, client, receiver.url)
    try:
        wait_for(lambda: len(receiver.accepted) >= 5, 20, "the first deliveries")
        receiver.stop()  # the external system goes away...
        for minute, (action, role, payload) in enumerate(TO_CLOSED[3:], start=20):
            for case_id in case_ids:
                store.act(case_id, action, role, at(minute), payload)
        time.sleep(0.3)  # ...while the hub keeps retrying
        running.stop()  # and the hub restarts
        receiver.start()
        running = webhook_forwarder(db, client, receiver.url)
        wait_for(lambda: pending(database_url) == 0, 30, "every event delivered")
    finally:
        running.stop()
        receiver.stop()
        client.close()

    keys = [key for key, _ in receiver.accepted]
    assert len(keys) == len(set(keys)) == 3 * (1 + len(TO_CLOSED))
    assert receiver.bad_signatures == 0
    for case_id in case_ids:
        bodies = [b for _, b in receiver.accepted if b["case"]["id"] == case_id]  # type: ignore[index]
        seqs = [b["event"]["seq"] for b in bodies]  # type: ignore[index]
        assert seqs == list(range(1, len(TO_CLOSED) + 2))
        assert [b["event_type"] for b in bodies][-1] == "case.close"
    with psycopg.connect(database_url) as conn:
        retried = conn.execute("SELECT count(*) FROM outbox WHERE attempts > 1").fetchone()
    assert retried is not None
    assert retried[0] >= 1


def test_open311_client_files_new_cases_and_keeps_their_ids(
    db: Database, database_url: str
) -> None:
    target = OutboxTarget("open311", actions=frozenset({Action.REPORT}))
    store = CaseStore(db, case_setup(), [target])
    record = store.report(hotline_report(), at(0))
    store.act(record.id, Action.REGISTER, Role.INTAKE_OPERATOR, at(1))
    answer = orjson.dumps([{"service_request_id": "NJ-638344", "service_notice": "ok"}])
    receiver = Receiver(free_port(), fail_first=1, answer=answer)
    receiver.start()
    client = httpx.Client(timeout=2.0)
    delivery = Open311Delivery(client, f"http://127.0.0.1:{receiver.port}/open311/v2", "key-9")
    forwarder = CaseForwarder(
        Outbox(db),
        [delivery],
        retry_base=timedelta(seconds=0.05),
        retry_longest=timedelta(seconds=0.1),
    )
    try:
        deadline = time.monotonic() + 10
        while pending(database_url) and time.monotonic() < deadline:
            forwarder.deliver_once()
            time.sleep(0.06)
    finally:
        receiver.stop()
        client.close()
    assert pending(database_url) == 0
    (form,) = receiver.forms
    assert form["api_key"] == ["key-9"]
    assert form["service_code"] == ["01003"]
    assert form["lat"] == ["32.0500000"]
    assert form["long"] == ["118.7800000"]
    assert form["description"][0].startswith(f"[{record.case_number}]")
    stored = store.get(record.id)
    assert stored is not None
    assert stored.external_id == "NJ-638344"
