"""Grafana's PostgreSQL query pipeline, offline: template variables, then the data source's
macros, as Grafana 11 does it (public/app/features/templating and
pkg/tsdb/grafana-postgresql-datasource/macros.go), so a test can run a panel's SQL."""

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
PROVISIONING = Path(__file__).resolve().parents[2] / "grafana" / "provisioning"

Json = dict[str, Any]

# Grafana's variable syntaxes: $name, [[name:format]], ${name:format}
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.[^:^\}]+)?(?::([^\}]+))?\}"
)
# the Go macro engine's expression: $name(args without a closing parenthesis)
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
ALL = "$__all"


class MacroError(ValueError):
    """A macro Grafana would reject (unknown name, missing argument, bad interval)."""


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable's chosen value(s) and whether Grafana quotes them (multi/All)."""

    values: tuple[str, ...]
    quoted: bool


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One SQL target of one panel."""

    dashboard_uid: str
    panel_title: str
    ref_id: str
    fmt: str
    raw_sql: str


def load_dashboards() -> dict[str, Json]:
    """Every dashboard JSON file by name."""
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def iter_panels(panels: Sequence[Json]) -> Iterator[Json]:
    """Panels, including those inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def panel_queries(dashboard: Json) -> list[PanelQuery]:
    """Every raw SQL target of a dashboard's panels."""
    return [
        PanelQuery(
            dashboard["uid"],
            panel["title"],
            target["refId"],
            target.get("format", "time_series"),
            target["rawSql"],
        )
        for panel in iter_panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "rawSql" in target
    ]


def datasource_refs(node: object) -> Iterator[Json]:
    """Every `datasource` reference anywhere in a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            else:
                yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def interval_seconds(text: str) -> float:
    """Seconds of a Grafana interval such as `5m`, `1h`, `30s` (gtime.ParseInterval)."""
    match = _INTERVAL.match(text.strip().strip("'"))
    if match is None:
        raise MacroError(f"error parsing interval {text}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


# rangeutil.roundInterval: (below this many ms, round to this interval)
_ROUNDING = (
    (1_500, "1s"),
    (3_500, "2s"),
    (7_500, "5s"),
    (12_500, "10s"),
    (17_500, "15s"),
    (25_000, "20s"),
    (45_000, "30s"),
    (90_000, "1m"),
    (210_000, "2m"),
    (450_000, "5m"),
    (750_000, "10m"),
    (1_050_000, "15m"),
    (1_500_000, "20m"),
    (2_700_000, "30m"),
    (5_400_000, "1h"),
    (9_000_000, "2h"),
    (16_200_000, "3h"),
    (27_000_000, "6h"),
    (86_400_000, "12h"),
    (604_800_000, "1d"),
    (1_814_400_000, "1w"),
)


def auto_interval(start: datetime, end: datetime, max_data_points: int = 1000) -> str:
    """`$__interval` for a range: range / max data points, rounded as Grafana rounds it."""
    raw_ms = (end - start).total_seconds() * 1000 / max_data_points
    for below_ms, text in _ROUNDING:
        if raw_ms < below_ms:
            return text
    return "30d"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format(variable: Variable, fmt: str | None) -> str:
    if fmt in ("raw", "csv"):
        return ",".join(variable.values)
    if fmt == "sqlstring" or variable.quoted:
        return ",".join(_quote(v) for v in variable.values)
    if fmt is not None:
        raise MacroError(f"format {fmt} not supported here")
    return variable.values[0]


def interpolate(sql: str, variables: Mapping[str, Variable]) -> str:
    """Replace known variables as the PostgreSQL data source formats them; leave the rest."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(5)
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        return _format(variable, fmt)

    return _VARIABLE.sub(replace, sql)


def unresolved(sql: str) -> list[str]:
    """Variable references left after interpolation (macros with arguments do not count)."""
    left = []
    for match in _VARIABLE.finditer(sql):
        name = match.group(1) or match.group(2) or match.group(4)
        is_macro = match.group(1) is not None and sql[match.end() : match.end() + 1] == "("
        if not (is_macro and name.startswith("__")):
            left.append(match.group(0))
    return left


def _rfc3339(instant: datetime) -> str:
    """Go's RFC3339Nano in UTC: `2026-11-20T01:33:04Z`, fractional seconds only when set."""
    utc = instant.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def expand_macros(sql: str, start: datetime, end: datetime, timescaledb: bool) -> str:
    """The data source's macros in plain SQL for a UTC time range."""
    first_error: list[MacroError] = []
    frm, to = _rfc3339(start), _rfc3339(end)

    def evaluate(name: str, args: list[str]) -> str:
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            if not args[0]:
                raise MacroError(f"missing time column argument for macro {name}")
            return f"{args[0]} BETWEEN '{frm}' AND '{to}'"
        if name == "__timeFrom":
            return f"'{frm}'"
        if name == "__timeTo":
            return f"'{to}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                raise MacroError(f"macro {name} needs time column and interval")
            seconds = interval_seconds(args[1])
            if timescaledb:
                group = f"time_bucket('{seconds:.3f}s',{args[0]})"
            else:
                group = f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {int(start.timestamp())} AND {args[0]} <= {int(end.timestamp())}"
        raise MacroError(f"unknown macro {name!r}")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "__timeGroup":
            index = sql.find(match.group(0))
            after = index + len(match.group(0))
            if index >= 0 and sql[after : after + 1] == ",":
                name = "__timeGroupAlias"  # Grafana's pre-5.3 compatibility rule
        args = [a.strip() for a in match.group(2).split(",")]
        try:
            return evaluate(name, args)
        except MacroError as err:
            first_error.append(err)
            return "macro_error()"

    expanded = _MACRO.sub(replace, sql)
    if first_error:
        raise first_error[0]
    return expanded


def global_variables(start: datetime, end: datetime) -> dict[str, Variable]:
    """Grafana's built-in variables for a range."""
    interval = auto_interval(start, end)
    return {
        "__interval": Variable((interval,), quoted=False),
        "__interval_ms": Variable((str(int(interval_seconds(interval) * 1000)),), quoted=False),
        "__from": Variable((str(int(start.timestamp() * 1000)),), quoted=False),
        "__to": Variable((str(int(end.timestamp() * 1000)),), quoted=False),
    }


def variable_sql(variable: Json) -> str:
    """The SQL of a query variable (a string, or an object with `rawSql`/`query`)."""
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("rawSql") or query.get("query")
    if not isinstance(query, str) or not query.strip():
        raise MacroError(f"variable {variable.get('name')} has no query")
    return query


def choose(variable: Json, options: Sequence[str]) -> Variable:
    """What a dashboard opens with: All when offered, else the first option."""
    multi = bool(variable.get("multi"))
    include_all = bool(variable.get("includeAll"))
    if include_all:
        all_value = variable.get("allValue")
        if all_value:
            return Variable((str(all_value),), quoted=False)
        return Variable(tuple(options), quoted=True)
    return Variable(tuple(options[:1]), quoted=multi)


def custom_options(variable: Json) -> list[str]:
    """Options of a custom/interval/constant variable (`a,b,c` or `label : value`)."""
    query = str(variable.get("query", ""))
    options = []
    for part in re.split(r"(?<!\\),", query):
        text = part.strip().replace("\\,", ",")
        if " : " in text:
            text = text.split(" : ", 1)[1]
        if text:
            options.append(text)
    return options
