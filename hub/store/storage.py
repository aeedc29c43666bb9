"""Storage ages from the settings: retention, compression, aggregate refresh, the city's day.

Written at every migrate (and by `python -m hub storage apply`) into retention_settings and
hub_meta. Plain PostgreSQL enforces `keep` with Database.enforce_retention; on TimescaleDB a
trigger (migration 016) turns each retention_settings row into the hypertable's retention and
compression policies, and this module replaces the continuous aggregates' refresh policies.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]


class StorageMode(StrEnum):
    """TimescaleDB features when the extension is present, otherwise plain tables and views."""

    TIMESCALE = "timescale"
    PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A continuous aggregate (a view in plain mode) and its bucket and refresh schedule."""

    view: str
    bucket: timedelta
    schedule: timedelta

    @property
    def end_offset(self) -> timedelta:
        """The newest bucket, still filling, is left to real-time aggregation."""
        return self.bucket if self.bucket < timedelta(days=1) else timedelta(hours=1)


AGGREGATES = (
    Aggregate("lighting_hourly", timedelta(hours=1), timedelta(hours=1)),
    Aggregate("cabinet_hourly", timedelta(hours=1), timedelta(hours=1)),
    Aggregate("truck_hourly", timedelta(hours=1), timedelta(hours=1)),
    Aggregate("manhole_hourly", timedelta(hours=1), timedelta(hours=1)),
    Aggregate("parking_5min", timedelta(minutes=5), timedelta(minutes=5)),
    Aggregate("lighting_energy_hourly", timedelta(hours=1), timedelta(hours=1)),
    Aggregate("lighting_energy_daily", timedelta(days=1), timedelta(hours=1)),
    Aggregate("cabinet_energy_daily", timedelta(days=1), timedelta(hours=1)),
)
# A scheduler that falls behind (restarts, a long compression job) still covers late data.
_REFRESH_SLACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    """How long rows are kept and compressed, how late a reading may be, the city's zone."""

    telemetry_keep: timedelta = timedelta(days=365)
    dead_letters_keep: timedelta = timedelta(days=90)
    compress_after: timedelta = timedelta(days=7)
    accepted_age: timedelta = timedelta(days=7)
    city_timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.city_timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {self.city_timezone!r}") from err
        longest = max(self.refresh_start_offset(a) for a in AGGREGATES)
        if self.telemetry_keep <= longest:
            # A refresh over dropped raw data empties those buckets of the aggregate.
            raise ValueError(
                f"telemetry retention ({self.telemetry_keep.days} days) must exceed the"
                f" aggregates' refresh window ({longest}), which covers every accepted reading"
            )

    def refresh_start_offset(self, aggregate: Aggregate) -> timedelta:
        """How far back a refresh reaches: the oldest accepted reading's whole bucket, plus
        a schedule period and a day of slack, so no accepted reading misses its refresh."""
        return self.accepted_age + aggregate.bucket + aggregate.schedule + _REFRESH_SLACK


@dataclass(frozen=True, slots=True)
class TableStorage:
    """One growing table's ages: as configured, and as the TimescaleDB policies have them."""

    table: str
    keep: timedelta
    compress_after: timedelta | None
    hypertable: bool
    policy_keep: str | None  # the retention job's drop_after; None without a job
    policy_compress_after: str | None


@dataclass(frozen=True, slots=True)
class AggregateRefresh:
    """A continuous aggregate's refresh policy as scheduled."""

    view: str
    start_offset: str | None
    end_offset: str | None
    schedule: str | None


@dataclass(frozen=True, slots=True)
class StorageReport:
    """What `python -m hub storage show` prints."""

    mode: StorageMode
    city_timezone: str
    tables: list[TableStorage]
    aggregates: list[AggregateRefresh]


def record_city_timezone(conn: Conn, mode: StorageMode, zone: str) -> None:
    """Record the city's zone before migrations run (016 builds the daily buckets with it).

    Plain views read it at query time, so a new setting takes effect at once; TimescaleDB
    aggregates keep the zone they were built with, and a different setting is reported.
    """
    row = conn.execute("SELECT value FROM hub_meta WHERE key = 'city_timezone'").fetchone()
    if row is None or mode is StorageMode.PLAIN:
        conn.execute(
            "INSERT INTO hub_meta (key, value) VALUES ('city_timezone', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (zone,),
        )
    elif str(row[0]) != zone:
        log.warning(
            "HUB_CITY_TIMEZONE=%s but the continuous aggregates bucket days in %s, the zone"
            " of the first migrate; rebuilding them is a manual step (docs/scaling.md)",
            zone,
            row[0],
        )


def write_storage_policy(conn: Conn, mode: StorageMode, policy: StoragePolicy) -> None:
    """Put the policy's ages into retention_settings and, on TimescaleDB, its jobs."""
    with conn.transaction():
        conn.execute(
            "UPDATE retention_settings SET keep = %s, compress_after = %s"
            " WHERE table_name LIKE 'telemetry\\_%%'",
            (
                policy.telemetry_keep,
                policy.compress_after if mode is StorageMode.TIMESCALE else None,
            ),
        )
        conn.execute(
            "UPDATE retention_settings SET keep = %s WHERE table_name = 'dead_letters'",
            (policy.dead_letters_keep,),
        )
        if mode is StorageMode.TIMESCALE:
            for aggregate in AGGREGATES:
                _replace_refresh_policy(conn, aggregate, policy)


def _replace_refresh_policy(conn: Conn, aggregate: Aggregate, policy: StoragePolicy) -> None:
    # docs: api/latest/continuous-aggregates/remove_continuous_aggregate_policy (if_exists,
    # named so since 2.8) and add_continuous_aggregate_policy (start_offset, end_offset,
    # schedule_interval); add with if_not_exists would keep an old window.
    conn.execute(
        "SELECT remove_continuous_aggregate_policy(%s::regclass, if_exists => true)",
        (aggregate.view,),
    )
    conn.execute(
        "SELECT add_continuous_aggregate_policy(%s::regclass,"
        " start_offset => %s::interval, end_offset => %s::interval,"
        " schedule_interval => %s::interval)",
        (
            aggregate.view,
            policy.refresh_start_offset(aggregate),
            aggregate.end_offset,
            aggregate.schedule,
        ),
    )


def refresh_incomplete_aggregates(conn: Conn, mode: StorageMode) -> list[str]:
    """Refresh in full the aggregates a migration marked (outside any transaction)."""
    if mode is not StorageMode.TIMESCALE:
        return []
    mark = conn.execute(
        "SELECT 1 FROM hub_meta WHERE key = 'aggregates_need_full_refresh'"
    ).fetchone()
    if mark is None:
        return []
    refreshed = []
    for aggregate in AGGREGATES:
        log.info("refreshing %s over all stored data (once, after migration 016)", aggregate.view)
        # docs: api/latest/continuous-aggregates/refresh_continuous_aggregate: NULL start is
        # the oldest data; only whole buckets inside the window are materialized.
        conn.execute(
            "CALL refresh_continuous_aggregate(%s::regclass, NULL, now() - %s::interval)",
            (aggregate.view, aggregate.end_offset),
        )
        refreshed.append(aggregate.view)
    conn.execute("DELETE FROM hub_meta WHERE key = 'aggregates_need_full_refresh'")
    return refreshed


def read_storage_report(conn: Conn, mode: StorageMode) -> StorageReport:
    """The configured ages and, on TimescaleDB, the policies' own view of them."""
    zone_row = conn.execute("SELECT value FROM hub_meta WHERE key = 'city_timezone'").fetchone()
    rows = conn.execute(
        "SELECT table_name, keep, compress_after FROM retention_settings ORDER BY table_name"
    ).fetchall()
    jobs: dict[tuple[str, str], str] = {}
    hypertables: set[str] = set()
    aggregates: list[AggregateRefresh] = []
    if mode is StorageMode.TIMESCALE:
        # docs: api/latest/informational-views/jobs: proc_name names the policy, config holds
        # its arguments (drop_after, compress_after, start_offset, end_offset).
        hypertables = {
            str(r[0])
            for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        }
        for table, proc, value in conn.execute(
            "SELECT hypertable_name, proc_name,"
            " coalesce(config ->> 'drop_after', config ->> 'compress_after')"
            " FROM timescaledb_information.jobs"
            " WHERE proc_name IN ('policy_retention', 'policy_compression')"
        ):
            jobs[(str(table), str(proc))] = str(value)
        for view, start, end, schedule in conn.execute(
            "SELECT c.view_name, j.config ->> 'start_offset', j.config ->> 'end_offset',"
            " j.schedule_interval::text"
            " FROM timescaledb_information.continuous_aggregates c"
            " LEFT JOIN timescaledb_information.jobs j"
            "  ON j.proc_name = 'policy_refresh_continuous_aggregate'"
            "  AND j.hypertable_name = c.materialization_hypertable_name"
            " ORDER BY c.view_name"
        ):
            aggregates.append(
                AggregateRefresh(
                    str(view),
                    None if start is None else str(start),
                    None if end is None else str(end),
                    None if schedule is None else str(schedule),
                )
            )
    tables = [
        TableStorage(
            table=str(name),
            keep=_as_timedelta(keep),
            compress_after=None if compress is None else _as_timedelta(compress),
            hypertable=str(name) in hypertables,
            policy_keep=jobs.get((str(name), "policy_retention")),
            policy_compress_after=jobs.get((str(name), "policy_compression")),
        )
        for name, keep, compress in rows
    ]
    zone = str(zone_row[0]) if zone_row else "UTC"
    return StorageReport(mode, zone, tables, aggregates)


def _as_timedelta(value: object) -> timedelta:
    if not isinstance(value, timedelta):
        raise TypeError(f"expected an interval, got {value!r}")
    return value


def format_storage_report(report: StorageReport) -> str:
    """The report as an operator reads it."""
    lines = [f"storage mode: {report.mode}; city day in {report.city_timezone}"]
    lines.append(f"{'table':<28} {'keep':>10} {'compress':>10}  enforced by")
    for t in report.tables:
        compress = f"{t.compress_after.days}d" if t.compress_after else "-"
        if t.hypertable:
            how = (
                f"TimescaleDB: drop_after {t.policy_keep or 'NO POLICY'},"
                f" compress_after {t.policy_compress_after or 'none'}"
            )
        else:
            how = "the hub's periodic delete"
        lines.append(f"{t.table:<28} {str(t.keep.days) + 'd':>10} {compress:>10}  {how}")
    lines.extend(
        f"aggregate {a.view}: refresh from now-{a.start_offset} to now-{a.end_offset}"
        f" every {a.schedule}"
        for a in report.aggregates
    )
    if report.mode is StorageMode.PLAIN:
        lines.append("aggregates are views over the raw tables: complete by construction")
    return "\n".join(lines)
