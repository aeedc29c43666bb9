"""Storage bytes per reading of each telemetry table, and compressed where TimescaleDB is present.

Starts its own PostgreSQL (no broker: nothing goes over MQTT). For each kind it simulates
a city of that kind only (simulators: realistic values, intervals and day/night patterns,
no faults) for `--days`, with as many devices as give about `--readings` readings, decodes
the messages with the hub's decoder and writes them with the hub's own writer
(hub.store.telemetry.TelemetryWriter: binary COPY into staging, merged in batches of
20,000). After VACUUM ANALYZE it reports the table's total size with its indexes and
TOAST (pg_total_relation_size; hypertable_size on TimescaleDB) per stored row. With
TimescaleDB it then compresses every chunk (compress_chunk over show_chunks, the
hypertables' own segment-by and order-by settings from the migrations) and reports
after_compression_total_bytes of hypertable_compression_stats per row.

    python bench/bench_storage.py [--readings 200000] [--days 2] [--json PATH]
"""

import argparse
import math
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from figures import Figure, add_json_option, publish_figures
from stack import local_stack

from hub.devices.batch import Batch
from hub.devices.decode import DecodeLimits, Reading, decode_message
from hub.devices.kinds import Kind
from hub.store.migrations import apply_migrations
from hub.store.storage import StorageMode
from hub.store.telemetry import TABLES, TelemetryWriter
from simulators.city import CitySpec
from simulators.engine import Simulation
from simulators.faults import NoiseModel
from simulators.generator import generate_city

ROOT_TOPIC = "store"
BATCH_ROWS = 20_000
# Readings per device per simulated day (measured on the simulators' defaults).
DAILY_READINGS = {
    Kind.LIGHTING: 290.0,
    Kind.CABINET: 1440.0,
    Kind.TRUCK: 2000.0,
    Kind.MANHOLE: 48.0,
    Kind.PARKING: 62.0,
}
LAMPS_PER_CABINET_FOR_CABINETS = 4  # the cabinet run needs cabinets, not lamps


@dataclass(slots=True)
class TimedCollector:
    """A simulators Publisher that keeps each message with the simulated time it was sent."""

    clock: Callable[[], int] = lambda: 0
    messages: list[tuple[int, str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Keep the message."""
        del retain
        self.messages.append((self.clock(), topic, payload))

    def wait(self, timeout_s: float) -> None:
        """Nothing to service."""
        del timeout_s

    def flush(self, timeout_s: float) -> bool:
        """Nothing is pending."""
        del timeout_s
        return True

    def close(self) -> None:
        """Nothing to close."""


def city_spec(kind: Kind, devices: int, seed: int) -> CitySpec:
    """A city of one kind (cabinets come with a few lamps each)."""
    if kind is Kind.CABINET:
        return CitySpec(
            seed=seed,
            lamps=devices * LAMPS_PER_CABINET_FOR_CABINETS,
            trucks=0,
            manholes=0,
            spots=0,
            lamps_per_cabinet=LAMPS_PER_CABINET_FOR_CABINETS,
        )
    return CitySpec(
        seed=seed,
        lamps=devices if kind is Kind.LIGHTING else 0,
        trucks=devices if kind is Kind.TRUCK else 0,
        manholes=devices if kind is Kind.MANHOLE else 0,
        spots=devices if kind is Kind.PARKING else 0,
    )


def simulated_readings(
    kind: Kind, target: int, days: float, seed: int
) -> tuple[list[Reading], float]:
    """About `target` decoded readings of one kind over `days` ending now; mean payload bytes."""
    # A few more devices than the daily rates ask for, then cut at the target.
    devices = max(1, math.ceil(1.15 * target / (DAILY_READINGS[kind] * days)))
    city = generate_city(city_spec(kind, devices, seed))
    collector = TimedCollector()
    end_ms = int(time.time() * 1000)
    simulation = Simulation(
        city,
        collector,
        start_ms=end_ms - int(days * 86_400_000),
        root=ROOT_TOPIC,
        noise=NoiseModel.silent(),
        kinds=[Kind.LIGHTING] if kind is Kind.CABINET else [kind],
    )
    collector.clock = lambda: simulation.now_ms
    simulation.advance_to(end_ms)
    registry = {d.device_id: d.kind for d in simulation.devices}
    limits = DecodeLimits(max_age=timedelta(days=days + 1))
    readings: list[Reading] = []
    payload_bytes = 0
    prefix = f"{ROOT_TOPIC}/{kind.value}/"
    for sent_ms, topic, payload in collector.messages:
        if not topic.startswith(prefix) or topic.endswith("/status"):
            continue
        received = datetime.fromtimestamp((sent_ms + 300) / 1000, UTC)
        decoded = decode_message(
            topic, payload, received, root=ROOT_TOPIC, registry=registry, limits=limits
        )
        if isinstance(decoded, list | tuple):
            readings.extend(decoded)
            payload_bytes += len(payload)
        if len(readings) >= target:
            break
    return readings, payload_bytes / max(1, len(readings))


def write_readings(url: str, readings: list[Reading]) -> int:
    """Store readings with the hub's writer in its batch size; the number inserted."""
    inserted = 0
    with psycopg.connect(url, autocommit=True) as conn:
        writer = TelemetryWriter(conn)
        for start in range(0, len(readings), BATCH_ROWS):
            inserted += writer.write_batch(Batch(readings=readings[start : start + BATCH_ROWS]))
    return inserted


@dataclass(frozen=True, slots=True)
class TableSize:
    """Rows and bytes of one telemetry table (before and after compression)."""

    rows: int
    total_bytes: int
    table_bytes: int
    index_bytes: int
    compressed_bytes: int | None


def measure_table(url: str, table: str, mode: StorageMode) -> TableSize:
    """Size of a table with its indexes and TOAST; compressed size on TimescaleDB."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}".encode())
        rows = int(conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()[0])  # type: ignore[index]
        if mode is StorageMode.PLAIN:
            total, heap, index = conn.execute(
                "SELECT pg_total_relation_size(%s), pg_table_size(%s), pg_indexes_size(%s)",
                (table, table, table),
            ).fetchone()  # type: ignore[misc]
            return TableSize(rows, int(total), int(heap), int(index), None)
        heap, index, toast, total = conn.execute(
            "SELECT table_bytes, index_bytes, toast_bytes, total_bytes"
            " FROM hypertable_detailed_size(%s)",
            (table,),
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks(%s) c",
            (table,),
        )
        row = conn.execute(
            "SELECT after_compression_total_bytes FROM hypertable_compression_stats(%s)",
            (table,),
        ).fetchone()
        compressed = int(row[0]) if row and row[0] is not None else None
        return TableSize(rows, int(total), int(heap) + int(toast or 0), int(index), compressed)


@contextmanager
def scratch_database(admin_url: str) -> Iterator[tuple[str, StorageMode]]:
    """A migrated scratch database on a running server (e.g. TimescaleDB), dropped after."""
    name = f"hub_bench_storage_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    try:
        yield url, apply_migrations(url, "auto").mode
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextmanager
def local_database() -> Iterator[tuple[str, StorageMode]]:
    """This machine's PostgreSQL from the OS packages, started for the run."""
    with local_stack("storage", broker=False) as stack:
        yield stack.database_url, stack.mode


def main() -> int:
    """Simulate, store, measure and print per kind."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=200_000, help="readings per kind")
    parser.add_argument("--days", type=float, default=2.0, help="simulated days")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--kinds", default=",".join(k.value for k in Kind), help="comma-separated kinds"
    )
    parser.add_argument(
        "--database-url",
        help="a server to measure on instead of a local PostgreSQL, e.g. TimescaleDB:"
        " postgresql://postgres@host/postgres (a role that may create databases); a scratch"
        " database is created, migrated in auto mode and dropped",
    )
    add_json_option(parser)
    args = parser.parse_args()

    figures: list[Figure] = []
    database = scratch_database(args.database_url) if args.database_url else local_database()
    with database as (database_url, mode):
        for kind in (Kind(k) for k in args.kinds.split(",")):
            readings, payload_bytes = simulated_readings(kind, args.readings, args.days, args.seed)
            inserted = write_readings(database_url, readings)
            size = measure_table(database_url, TABLES[kind].table, mode)
            devices = len({r.device_id for r in readings})
            figures.append(
                Figure(
                    "storage",
                    f"{kind.value}: bytes per reading",
                    size.total_bytes / size.rows,
                    "B",
                    None,
                    f"{size.rows:,} rows ({inserted:,} new) of {devices:,} devices over "
                    f"{args.days:g} days; table {size.table_bytes / size.rows:.0f} B + indexes "
                    f"{size.index_bytes / size.rows:.0f} B per row; JSON on the wire "
                    f"{payload_bytes:.0f} B",
                )
            )
            if size.compressed_bytes is None:
                figures.append(
                    Figure(
                        "storage",
                        f"{kind.value}: compressed bytes per reading",
                        None,
                        "B",
                        None,
                        "n/a (plain PostgreSQL)",
                    )
                )
            else:
                figures.append(
                    Figure(
                        "storage",
                        f"{kind.value}: compressed bytes per reading",
                        size.compressed_bytes / size.rows,
                        "B",
                        None,
                        f"TimescaleDB, every chunk compressed: "
                        f"{size.total_bytes / size.compressed_bytes:.1f}× smaller",
                    )
                )
    publish_figures(
        f"storage per reading ({mode} PostgreSQL), ~{args.readings:,} simulated readings "
        "per kind written by the hub's writer",
        figures,
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
