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

# TimescaleDB's time_bucket for a plain PostgreSQL, so the expansion Grafana uses with the
# provisioned `timescaledb: true` runs here too (same origin for buckets under a day).
TIME_BUCKET = (
    "CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz)"
    " RETURNS timestamptz LANGUAGE sql IMMUTABLE"
    " AS $$ SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $$"
)


def _timescaledb_flag() -> bool:
    data = yaml.safe_load((PROVISIONING / "datasources" / "hub.yaml").read_text())
    (source,) = [d for d in data["datasources"] if d["uid"] == "hub-timescaledb"]
    return bool(source["jsonData"].get("timescaledb"))


def _resolve_variables(
    conn: psycopg.Connection[Any], dashboard: dict[str, Any], start: datetime, end: datetime
) -> dict[str, Variable]:
    """Each variable in order, query variables run against the seed, as the dashboard opens."""
    values = global_variables(start, end)
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable["type"] == "query":
            sql = interpolate(variable_sql(variable), values)
            assert unresolved(sql) == [], (dashboard["uid"], name)
            sql = expand_macros(sql, start, end, timescaledb=_timescaledb_flag())
            options = [str(r[0]) for r in conn.execute(sql.encode()).fetchall() if r[0] is not None]
            assert options, f"{dashboard['uid']}: variable {name} has no values"
        elif variable["type"] in ("custom", "interval", "constant", "textbox"):
            options = custom_options(variable)
        else:
            pytest.fail(f"{dashboard['uid']}: variable type {variable['type']} not handled")
        values[name] = choose(variable, options)
    return values


def test_every_panel_query_runs_on_the_seeded_city(seeded_city: SeededCity) -> None:
    start = seeded_city.start
    end = max(seeded_city.seeded_at, datetime.now(UTC)) + timedelta(minutes=1)
    failures: list[str] = []
    ran = 0
    with psycopg.connect(seeded_city.database_url, autocommit=True) as conn:
        conn.execute(TIME_BUCKET)
        conn.execute("SET statement_timeout = '10s'")
        for dashboard in load_dashboards().values():
            variables = _resolve_variables(conn, dashboard, start, end)
            for query in panel_queries(dashboard):
                where = f"{query.dashboard_uid} / {query.panel_title} / {query.ref_id}"
                sql = interpolate(query.raw_sql, variables)
                assert unresolved(sql) == [], where
                for timescaledb in (True, False):
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
    assert ran >= 2 * 25
