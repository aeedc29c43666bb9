"""Run `python -m hub run` as a real child process, and publish to it over MQTT."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from hub.settings import MqttEndpoint

ROOT = Path(__file__).resolve().parent.parent


class HubChild:
    """A hub process started with our settings; its log goes to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, api: bool = False) -> None:
        self.env = env
        self.log_path = log_path
        self.api = api
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    @property
    def pid(self) -> int:
        """Process id of the running hub."""
        if self.process is None:
            raise RuntimeError("hub not started")
        return self.process.pid

    def start(self, timeout_s: float = 60.0) -> float:
        """Start the process; wait until it has subscribed (and serves the API, with one).

        Returns the seconds that took: the registry and the rules' state are loaded by then.
        """
        args = [sys.executable, "-m", "hub", "run"] + ([] if self.api else ["--no-api"])
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=log, stderr=log)
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            ready = text.count("subscribing to") > self._connects_before
            if ready and (not self.api or "Uvicorn running" in text):
                self.startup_s = time.monotonic() - started
                return self.startup_s
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited early:\n{text[-3000:]}")
            time.sleep(0.05)
        self.kill()  # a hub that never subscribed must not outlive the test
        raise TimeoutError(f"hub did not connect:\n{self.log_path.read_text()[-3000:]}")

    @property
    def _connects_before(self) -> int:
        return getattr(self, "_seen", 0)

    def mark(self) -> None:
        """Remember how many connections the log shows, so start() waits for a new one."""
        self._seen = (
            self.log_path.read_text(errors="replace").count("subscribing to")
            if (self.log_path.exists())
            else 0
        )

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit; return the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def metric_by_label(text: str, sample: str, label: str) -> dict[str, float]:
    """A /metrics page's values of one sample name (e.g. "hub_stage_cpu_seconds_total")
    by the value of one of its labels."""
    return {
        found.labels[label]: found.value
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample
    }


def hub_env(database_url: str, mqtt_url: str, root: str, **extra: str) -> dict[str, str]:
    """Environment for a hub child process."""
    env = dict(os.environ)
    env.update(
        {
            "HUB_DATABASE_URL": database_url,
            "HUB_MQTT_URL": mqtt_url,
            "HUB_MQTT_ROOT": root,
            "HUB_MQTT_CLIENT_ID": f"hub-{root}",
            "HUB_BATCH_INTERVAL_MS": "50",
            "HUB_REGISTRY_REFRESH_S": "0.5",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


@contextmanager
def running_hub(env: dict[str, str], log_path: Path, api: bool = False) -> Iterator[HubChild]:
    """A hub child process for the duration of a block."""
    child = HubChild(env, log_path, api)
    child.mark()
    child.start()
    try:
        yield child
    finally:
        child.stop()


def publish_all(
    mqtt_url: str, messages: Sequence[tuple[str, bytes]], client_id: str, retain: bool = False
) -> None:
    """Publish messages at QoS 1 and wait until the broker has acknowledged every one."""
    endpoint = MqttEndpoint(mqtt_url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    try:
        infos = [
            client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages
        ]
        for info in infos:
            info.wait_for_publish(timeout=60)
    finally:
        client.loop_stop()
        client.disconnect()


def wait_for(
    predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Poll until predicate() is true, or fail with what was awaited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def count(database_url: str, query: str) -> int:
    """A single integer from a query."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query.encode()).fetchone()
    return int(row[0]) if row else 0


def api_headers(database_url: str, role: str = "admin") -> dict[str, str]:
    """An Authorization header with a fresh API token of a role, for a hub child's API."""
    from hub.principals import AccessRole
    from hub.store.access import AccessStore
    from hub.store.database import Database

    db = Database(database_url, max_size=1)
    db.open()
    try:
        _, secret = AccessStore(db).create_token(f"test-{role}", AccessRole(role))
    finally:
        db.close()
    return {"Authorization": f"Bearer {secret}"}


class EventStream:
    """Reads /alarms/stream on a thread until it has seen an event named `until`."""

    def __init__(self, url: str, until: str, headers: dict[str, str]) -> None:
        self._until = until
        self.events: list[tuple[str, dict[str, object]]] = []
        self.ready = threading.Event()
        self._url = url
        self._headers = headers
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event = ""
        with httpx.stream(
            "GET", self._url, headers=self._headers, timeout=httpx.Timeout(5.0, read=60.0)
        ) as response:
            for line in response.iter_lines():
                if line.startswith(":"):
                    self.ready.set()
                elif line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data = line.removeprefix("data:").strip()
                    body = orjson.loads(data) if data.startswith("{") else {"text": data}
                    self.events.append((event, body))
                    if event == self._until:
                        return

    def join(self) -> None:
        """Wait for the reader to finish."""
        self._thread.join(timeout=10)
