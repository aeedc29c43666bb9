"""What a benchmark runs against: its own PostgreSQL and Mosquitto, a hub child process, a city.

Services start on free ports in a temporary directory (hub.cli.local_stack, durable
PostgreSQL settings, the repository's broker tuning) and are stopped afterwards. The hub
runs as `python -m hub run` in a child process, as in production. Devices, sites, permits,
lots and zones of a simulated city are written with the hub's own parsers and store
functions; devices by COPY, which is what makes 100,000 of them quick.
"""

import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from mqtt_load import LoadPublisher

from hub.cli.local_stack import LocalMosquitto, LocalPostgres, free_port
from hub.devices.registry import DeviceRecord, parse_device_file
from hub.rules import truck_records
from hub.services.os_threads import stat_cpu_seconds
from hub.store import parking, registry
from hub.store.database import Database
from hub.store.migrations import apply_migrations
from hub.store.storage import StorageMode
from hub.store.trucks import TruckStore
from simulators.city import DEVICES_FILE, PERMITS_FILE, City
from simulators.generator import write_city

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the hub child helpers live in tests/
    sys.path.insert(0, str(ROOT))

from tests.hub_process import HubChild, api_headers, metric_by_label, running_hub  # noqa: E402

# The tests' hub child, API token and /metrics reader; the load client.
__all__ = ["HubChild", "LoadPublisher", "api_headers", "metric_by_label", "running_hub"]


@dataclass(frozen=True, slots=True)
class Stack:
    """Running services of one benchmark and its scratch directory."""

    work: Path
    postgres: LocalPostgres
    broker: LocalMosquitto | None
    mode: StorageMode

    @property
    def database_url(self) -> str:
        """The `hub` database."""
        return self.postgres.url

    @property
    def mqtt_url(self) -> str:
        """The broker; raises if this stack has none."""
        if self.broker is None:
            raise RuntimeError("this benchmark started no broker")
        return self.broker.url


@contextmanager
def local_stack(name: str, *, broker: bool = True) -> Iterator[Stack]:
    """PostgreSQL (migrated, TimescaleDB when installed) and Mosquitto for a block."""
    with tempfile.TemporaryDirectory(prefix=f"hub-bench-{name}-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # PostgreSQL runs as its own user when we are root
        postgres = LocalPostgres(work / "pg", free_port(), durable=True)
        mosquitto = LocalMosquitto(work / "mqtt", free_port()) if broker else None
        postgres.start()
        try:
            if mosquitto is not None:
                mosquitto.start()
            report = apply_migrations(postgres.url, "auto")
            yield Stack(work, postgres, mosquitto, report.mode)
        finally:
            if mosquitto is not None:
                mosquitto.stop()
            postgres.stop()


def hub_env(stack: Stack, root: str, **extra: str) -> dict[str, str]:
    """Environment of a hub child process on this stack (extra: more HUB_* settings)."""
    env = dict(os.environ)
    env.update(
        {
            "HUB_DATABASE_URL": stack.database_url,
            "HUB_MQTT_URL": stack.mqtt_url,
            "HUB_MQTT_ROOT": root,
            "HUB_MQTT_CLIENT_ID": f"bench-{root}",
            "HUB_LOG_LEVEL": "INFO",
            "HUB_MODBUS_ENABLED": "false",  # no cabinets listen here; readings come over MQTT
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User plus system CPU time so far of each thread name of a process (threads of one
    name summed; the hub names its threads, hub/services/os_threads.py). A thread that
    ended takes its time with it: read before and after, for threads that live throughout."""
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            used = stat_cpu_seconds(task / "stat")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        seconds[name] = seconds.get(name, 0.0) + used
    return seconds


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident) of a process from /proc, in KiB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def publish_all(
    mqtt_url: str,
    messages: Iterable[tuple[str, bytes]],
    client_id: str,
    rate_per_s: float | None = None,
) -> float:
    """Publish messages as fast as the broker acknowledges, or paced at `rate_per_s`;
    seconds until all are acked."""
    publisher = LoadPublisher(mqtt_url, client_id)
    started = time.perf_counter()
    try:
        for i, (topic, payload) in enumerate(messages):
            if rate_per_s and i % 50 == 0:
                while (ahead_s := started + i / rate_per_s - time.perf_counter()) > 0:
                    publisher.pump(min(ahead_s, 0.01))
            publisher.publish(topic, payload)
            if i % 200 == 0:
                publisher.pump(0)
        if not publisher.wait_acked(300):
            raise TimeoutError(f"{publisher.sent - publisher.acked} publishes not acknowledged")
        return time.perf_counter() - started
    finally:
        publisher.close()


def copy_devices(database_url: str, records: Sequence[DeviceRecord]) -> None:
    """Register devices with one COPY (new ids only; the registry's own table and checks)."""
    with psycopg.connect(database_url) as conn:
        registry.copy_new_devices(conn, records)


def import_city(database_url: str, city: City, directory: Path) -> dict[str, int]:
    """Write a simulated city's files and import them the way the demo does (devices by COPY)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_city(city, directory)
    parsed = parse_device_file(DEVICES_FILE, (directory / DEVICES_FILE).read_text("utf-8"))
    if parsed.problems:
        raise ValueError(f"generated registry has problems: {parsed.problems[:3]}")
    copy_devices(database_url, parsed.records)
    areas = parking.parse_areas_geojson(
        (directory / "lots.geojson").read_bytes(), parking.AreaKind.LOT
    ) + parking.parse_areas_geojson(
        (directory / "zones.geojson").read_bytes(), parking.AreaKind.ZONE
    )
    sites = truck_records.parse_sites((directory / "sites.geojson").read_bytes())
    permits = truck_records.parse_permits((directory / PERMITS_FILE).read_bytes())
    db = Database(database_url, max_size=1)
    db.open()
    try:
        with db.connection() as conn:
            parking.upsert_areas(conn, areas)
            parking.apply_zone_max_stay(conn)
        store = TruckStore(db)
        if sites:
            store.upsert_sites(sites)
        if permits:
            store.upsert_permits(permits)
    finally:
        db.close()
    return {
        "devices": len(parsed.records),
        "areas": len(areas),
        "sites": len(sites),
        "permits": len(permits),
    }


def query_int(database_url: str, query: str, params: Sequence[object] = ()) -> int:
    """The integer in the first column of the first row of a query (0 when there is none)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])
