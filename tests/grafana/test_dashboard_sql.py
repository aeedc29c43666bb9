"""Every panel's SQL, expanded as Grafana would, runs against a database the simulators seeded
through a real hub, and returns rows wherever the seed provides the data."""

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import yaml

from tests.grafana.conftest import SeededCity
from tests.grafana.grafana_sql import (
    PROVISIONING,
    Variable,
    choose,
    custom_options,
    expand_macros,
    global_variables,
    interpolate,
    load_dashboards,
    panel_queries,
    unresolved,
    variable_sql,
)

pytestmark = pytest.mark.integration

# Panels the seed leaves empty, and why (every other panel must return rows).
MAY_BE_EMPTY: dict[tuple[str, str], str] = {
    ("hub-ingest", "Pending dead letters by reason"): "the simulators send no invalid messages",
}


def _timescaledb_flag() -> bool:
    data = yaml.safe_load((PROVISIONING / "datasources" / "hub.yaml").read_text())
    (source,) = [d for d in data["datasources"] if d["uid"] == "hub-timescaledb"]
    return bool(source["jsonData"].get("timescaledb"))


def _resolve_variables(
    conn: psycopg.Connection[Any],
    dashboard: dict[str, Any],
    start: datetime,
    end: datetime,
    timescaledb: bool,
) -> dict[str, Variable]:
    """Each variable in order, query variables run against the seed, as the dashboard opens."""
    values = global_variables(start, end)
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable["type"] == "query":
            sql = interpolate(variable_sql(variable), values)
            assert unresolved(sql) == [], (dashboard["uid"], name)
            sql = expand_macros(sql, start, end, timescaledb)
            options = [str(r[0]) for r in conn.execute(sql.encode()).fetchall() if r[0] is not None]
            assert options, f"{dashboard['uid']}: variable {name} has no values"
        elif variable["type"] in ("custom", "interval", "constant", "textbox"):
            options = custom_options(variable)
        else:
            pytest.fail(f"{dashboard['uid']}: variable type {variable['type']} not handled")
        values[name] = choose(variable, options)
    return values


def _has_timescaledb(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        found = row.fetchone()
    return bool(found and found[0])


def _run_every_panel(seeded_city: SeededCity, timescaledb: bool) -> None:
    """Expand every panel's SQL with or without the data source's TimescaleDB macros; run it."""
    start = seeded_city.start
    end = max(seeded_city.seeded_at, datetime.now(UTC)) + timedelta(minutes=1)
    failures: list[str] = []
    ran = 0
    with psycopg.connect(seeded_city.database_url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '10s'")
        for dashboard in load_dashboards().values():
            variables = _resolve_variables(conn, dashboard, start, end, timescaledb)
            for query in panel_queries(dashboard):
                where = f"{query.dashboard_uid} / {query.panel_title} / {query.ref_id}"
                sql = interpolate(query.raw_sql, variables)
                assert unresolved(sql) == [], where
                expanded = expand_macros(sql, start, end, timescaledb)
                try:
                    cursor = conn.execute(expanded.encode())
                except psycopg.Error as err:
                    failures.append(f"{where}: {err}\n  {expanded}")
                    continue
                ran += 1
                columns = [c.name for c in cursor.description or []]
                rows = cursor.fetchall()
                if query.fmt == "time_series" and "time" not in columns:
                    failures.append(f"{where}: a time series without a time column")
                if not rows and (query.dashboard_uid, query.panel_title) not in MAY_BE_EMPTY:
                    failures.append(f"{where}: no rows\n  {expanded}")
    assert failures == []
    assert ran >= 25


def test_every_panel_query_runs_on_the_seeded_city(seeded_city: SeededCity) -> None:
    """The expansion of a data source without the TimescaleDB flag: runs in both modes."""
    _run_every_panel(seeded_city, timescaledb=False)


def test_every_panel_query_runs_with_the_timescaledb_macros(seeded_city: SeededCity) -> None:
    """The provisioned data source's expansion (time_bucket), on TimescaleDB's own function."""
    assert _timescaledb_flag(), "the provisioned data source is the TimescaleDB one"
    if not _has_timescaledb(seeded_city.database_url):
        pytest.skip(
            "needs TimescaleDB's time_bucket: the server has no timescaledb extension"
            " (CI runs plain PostgreSQL; point HUB_TEST_DATABASE_URL at TimescaleDB)"
        )
    _run_every_panel(seeded_city, timescaledb=True)
