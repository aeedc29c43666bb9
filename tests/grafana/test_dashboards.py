"""Dashboards and provisioning, statically: stable uids, resolvable data sources and variables,
and Grafana's macro expansion as the PostgreSQL data source does it."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.grafana.grafana_sql import (
    PROVISIONING,
    MacroError,
    Variable,
    datasource_refs,
    expand_macros,
    global_variables,
    interpolate,
    iter_panels,
    load_dashboards,
    panel_queries,
    unresolved,
)

ROOT = Path(__file__).resolve().parents[2]
UIDS = {"hub-ingest", "hub-lighting", "hub-trucks", "hub-manholes", "hub-parking", "hub-cases"}
START = datetime(2026, 11, 19, 13, 0, tzinfo=UTC)
END = datetime(2026, 11, 20, 15, 0, 30, tzinfo=UTC)


def provisioned_datasource_uids() -> set[str]:
    data = yaml.safe_load((PROVISIONING / "datasources" / "hub.yaml").read_text())
    return {d["uid"] for d in data["datasources"]}


def test_every_dashboard_has_its_stable_uid_and_unique_panel_ids() -> None:
    dashboards = load_dashboards()
    assert {d["uid"] for d in dashboards.values()} == UIDS
    for name, dashboard in dashboards.items():
        ids = [p["id"] for p in iter_panels(dashboard["panels"])]
        assert len(ids) == len(set(ids)), name
        assert dashboard["title"]


def test_every_datasource_reference_is_the_provisioned_one() -> None:
    uids = provisioned_datasource_uids()
    assert "hub-timescaledb" in uids
    for name, dashboard in load_dashboards().items():
        refs = list(datasource_refs(dashboard))
        assert refs, name
        for ref in refs:
            assert ref.get("uid") in uids, (name, ref)
            assert ref.get("type") == "grafana-postgresql-datasource", (name, ref)


def test_every_variable_a_query_uses_is_defined_by_its_dashboard() -> None:
    for name, dashboard in load_dashboards().items():
        defined = {
            v["name"]: Variable(("x",), quoted=True)
            for v in dashboard.get("templating", {}).get("list", [])
        }
        defined.update(global_variables(START, END))
        sqls = [q.raw_sql for q in panel_queries(dashboard)]
        sqls += [str(v.get("query")) for v in dashboard.get("templating", {}).get("list", [])]
        for sql in sqls:
            assert unresolved(interpolate(sql, defined)) == [], (name, sql)


def test_provider_reads_the_directory_compose_mounts_the_dashboards_into() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "hub.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert f"./grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]


def test_macros_expand_like_the_postgres_datasource() -> None:
    sql = "SELECT $__timeGroupAlias(ts, '5m'), count(*) FROM t WHERE $__timeFilter(ts) GROUP BY 1"
    assert expand_macros(sql, START, END, timescaledb=False) == (
        'SELECT floor(extract(epoch from ts)/300)*300 AS "time", count(*) FROM t'
        " WHERE ts BETWEEN '2026-11-19T13:00:00Z' AND '2026-11-20T15:00:30Z' GROUP BY 1"
    )
    assert expand_macros("$__timeGroup(ts, 1h)", START, END, timescaledb=True) == (
        "time_bucket('3600.000s',ts)"
    )
    # pre-5.3 compatibility: a $__timeGroup followed by a comma gets the alias
    assert expand_macros("SELECT $__timeGroup(ts,'1m'), x", START, END, timescaledb=False) == (
        'SELECT floor(extract(epoch from ts)/60)*60 AS "time", x'
    )
    assert expand_macros("$__timeFrom() $__timeTo()", START, END, timescaledb=False) == (
        "'2026-11-19T13:00:00Z' '2026-11-20T15:00:30Z'"
    )
    with pytest.raises(MacroError):
        expand_macros("$__nope(ts)", START, END, timescaledb=False)
    with pytest.raises(MacroError):
        expand_macros("$__timeGroup(ts, soon)", START, END, timescaledb=False)


def test_variables_are_quoted_as_the_postgres_datasource_does() -> None:
    variables = {
        "multi": Variable(("a", "o'k"), quoted=True),
        "single": Variable(("5",), quoted=False),
        **global_variables(START, END),
    }
    sql = "x IN ($multi) AND y = $single AND z IN (${multi:csv}) AND g = [[single]]"
    sql += " AND i = '$__interval'"
    assert interpolate(sql, variables) == (
        "x IN ('a','o''k') AND y = 5 AND z IN (a,o'k) AND g = 5 AND i = '2m'"
    )
    assert unresolved("$__timeFilter(ts) AND a = $missing") == ["$missing"]
