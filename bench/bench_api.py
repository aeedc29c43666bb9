"""API latency with a month of simulated data: parking occupancy now, a truck's 24-hour track,
the case queue.

Starts its own PostgreSQL and Mosquitto, imports a simulated city (simulators.generator:
spots in lots and on-street zones, trucks with permits and sites) the way the demo does,
then writes `--days` of history straight into the hub's tables with binary COPY:
  parking  every spot's arrivals and departures (events) and its half-hourly heartbeat,
           then each spot's newest report (parking_spot_latest), which the hub's telemetry
           writer keeps up to date as readings arrive
  trucks   a fix every 10-30 s (per truck) while driving its permit route in its permit's
           hours, one every 5 min while parked, up to now
  cases    `--cases` cases reported over the period through the store's own functions
           (numbering, events, outbox), left at every stage of the workflow
and runs VACUUM ANALYZE, as a month-old database would have. Then it starts the hub with
its API (`python -m hub run` on a free port), takes tokens of the roles that use each view,
warms up, and times `--requests` sequential requests per endpoint with httpx (one
keep-alive connection, the hub on the same 2 cores). Finally it turns on auto_explain for
one request per endpoint and prints the plans of endpoints that miss the target
(`--explain`: of every endpoint), with the SQL time against the request time.

    python bench/bench_api.py [--days 30] [--spots 3000] [--trucks 200] [--cases 3000]
"""

import argparse
import math
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import psycopg
from figures import Figure, add_json_option, percentile, publish_figures
from stack import Stack, hub_env, import_city, local_stack, running_hub

from hub.cases.classification import ClassKind, load_classification
from hub.cases.intake import PersonReport, draft_person_case
from hub.cases.workflow import Action, CaseSource, Role
from hub.cli.local_stack import free_port
from hub.principals import AccessRole
from hub.services.case_setup import load_case_setup
from hub.settings import Settings
from hub.store.access import AccessStore
from hub.store.cases import act_on_case, open_case
from hub.store.database import Database
from hub.store.parking import rebuild_latest_reports
from simulators.city import City, CitySpec
from simulators.generator import generate_city

TARGET_P99 = "< 50 ms"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOCAL_OFFSET_S = 8 * 3600  # Asia/Shanghai, the simulated city's zone (no daylight saving)
PARKED_INTERVAL_S = 300.0
TRUCK_SPEED_MPS = 9.5
TRUCK_INTERVALS_S = (10.0, 15.0, 20.0, 30.0)
HEARTBEAT_S = 1800.0
COPY_CHUNK = 50_000


# --- data --------------------------------------------------------------------------------


def _times(seconds: np.ndarray) -> list[datetime]:
    """Aware datetimes from epoch seconds."""
    return [EPOCH + timedelta(microseconds=int(us)) for us in (seconds * 1e6).tolist()]


def spot_history(
    rng: np.random.Generator, start_s: float, end_s: float, on_street: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts_s, occupied, is_event) of one spot: sessions with day/night demand, heartbeats."""
    mean_dwell_s = 50 * 60.0 if on_street else 150 * 60.0
    changes: list[float] = []
    t = start_s + float(rng.uniform(0, 3600))
    occupied = False
    while t < end_s:
        local_hour = ((t + LOCAL_OFFSET_S) % 86400) / 3600
        if occupied:
            gap = float(rng.lognormal(math.log(mean_dwell_s), 0.8))
        else:
            busy = 7 <= local_hour < 22
            gap = float(rng.exponential(40 * 60.0 if busy else 6 * 3600.0))
        t += max(gap, 90.0)
        occupied = not occupied
        changes.append(t)
    change_ts = np.asarray([c for c in changes if c < end_s], dtype=np.float64)
    change_state = np.arange(len(change_ts)) % 2 == 0  # the first change is an arrival
    beats = np.arange(start_s + float(rng.uniform(0, HEARTBEAT_S)), end_s, HEARTBEAT_S)
    index = np.searchsorted(change_ts, beats, side="right")
    beat_state = np.where(index == 0, False, (index - 1) % 2 == 0)
    ts = np.concatenate([change_ts + rng.uniform(0, 0.5, len(change_ts)), beats])
    state = np.concatenate([change_state, beat_state])
    is_event = np.concatenate([np.ones(len(change_ts), bool), np.zeros(len(beats), bool)])
    order = np.argsort(ts, kind="stable")
    return ts[order], state[order], is_event[order]


def load_parking(url: str, city: City, start_s: float, end_s: float, seed: int) -> int:
    """Every spot's history into telemetry_parking by binary COPY, and each spot's newest
    report as the telemetry writer would have kept it; the number of rows."""
    rng = np.random.default_rng(seed)
    rows = 0
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(
            "COPY telemetry_parking (device_id, ts, received_at, is_event, occupied,"
            " battery_pct) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "timestamptz", "timestamptz", "bool", "bool", "float4"])
            for spot in city.spots:
                ts, state, is_event = spot_history(rng, start_s, end_s, spot.zone_id is not None)
                battery = 96.0 - 4.0 * (ts - start_s) / (end_s - start_s) - rng.uniform(0, 3)
                times = _times(ts)
                received = _times(ts + 0.3)
                for i, when in enumerate(times):
                    copy.write_row(
                        (
                            spot.device_id,
                            when,
                            received[i],
                            bool(is_event[i]),
                            bool(state[i]),
                            round(float(battery[i]), 1),
                        )
                    )
                rows += len(times)
        rebuild_latest_reports(conn)
    return rows


@dataclass(frozen=True, slots=True)
class Route:
    """A permit route as lat/lon vertices with cumulative length, and its hours (local s)."""

    lat: np.ndarray
    lon: np.ndarray
    along_m: np.ndarray
    heading_deg: np.ndarray
    window_start_s: float
    window_end_s: float

    @property
    def length_m(self) -> float:
        """Route length."""
        return float(self.along_m[-1])


def permit_route(city: City, truck_id: str) -> Route:
    """The route and hours of a truck's permit."""
    permit = next(p for p in city.permits if p.truck_id == truck_id)
    points = permit.route.points
    lat_lon = [city.projection.to_lat_lon(x, y) for x, y in points]
    xy = np.asarray(points, dtype=np.float64)
    step = np.diff(xy, axis=0)
    headings = np.degrees(np.arctan2(step[:, 0], step[:, 1])) % 360.0
    start_min, end_min = permit.allowed_minutes()
    return Route(
        lat=np.asarray([p[0] for p in lat_lon]),
        lon=np.asarray([p[1] for p in lat_lon]),
        along_m=np.asarray(permit.route.cumulative_m),
        heading_deg=headings,
        window_start_s=start_min * 60.0,
        window_end_s=end_min * 60.0 if end_min > start_min else end_min * 60.0 + 86400.0,
    )


def truck_day(
    route: Route, interval_s: float, day_start_s: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One local day of a truck: driving its route back and forth in its hours, parked else."""
    drive_from = day_start_s + route.window_start_s
    drive_to = day_start_s + route.window_end_s
    driving = np.arange(drive_from + float(rng.uniform(0, interval_s)), drive_to, interval_s)
    parked = np.arange(
        day_start_s + float(rng.uniform(0, PARKED_INTERVAL_S)),
        day_start_s + 86400,
        PARKED_INTERVAL_S,
    )
    # Parked outside today's driving window and outside yesterday's, which may run past midnight.
    in_today = (parked >= drive_from) & (parked < drive_to)
    in_yesterday = (parked >= drive_from - 86400) & (parked < drive_to - 86400)
    parked = parked[~in_today & ~in_yesterday]
    distance = (driving - drive_from) * TRUCK_SPEED_MPS
    lap = 2 * route.length_m
    along = np.mod(distance, lap)
    back = along > route.length_m
    along = np.where(back, lap - along, along)
    segment = np.clip(
        np.searchsorted(route.along_m, along, side="right") - 1, 0, len(route.heading_deg) - 1
    )
    heading = np.where(
        back, (route.heading_deg[segment] + 180.0) % 360.0, route.heading_deg[segment]
    )
    jitter = rng.normal(0, 2e-5, (2, len(driving)))
    ts = np.concatenate([driving, parked])
    order = np.argsort(ts)
    return {
        "ts": ts[order],
        "lat": np.concatenate(
            [
                np.interp(along, route.along_m, route.lat) + jitter[0],
                np.full(len(parked), route.lat[0]),
            ]
        )[order],
        "lon": np.concatenate(
            [
                np.interp(along, route.along_m, route.lon) + jitter[1],
                np.full(len(parked), route.lon[0]),
            ]
        )[order],
        "speed": np.concatenate(
            [rng.normal(34.0, 4.0, len(driving)).clip(0), np.zeros(len(parked))]
        )[order],
        "heading": np.concatenate([heading, np.zeros(len(parked))])[order],
        "acc_on": np.concatenate([np.ones(len(driving), bool), np.zeros(len(parked), bool)])[order],
        "full": np.concatenate(
            [(distance // route.length_m) % 2 == 0, np.zeros(len(parked), bool)]
        )[order],
    }


def load_trucks(url: str, city: City, start_s: float, end_s: float, seed: int) -> int:
    """Every truck's positions into telemetry_truck by binary COPY; the number of rows."""
    rng = np.random.default_rng(seed)
    rows = 0
    first_day = math.floor((start_s + LOCAL_OFFSET_S) / 86400) * 86400 - LOCAL_OFFSET_S
    with (
        psycopg.connect(url) as conn,
        conn.cursor().copy(
            "COPY telemetry_truck (device_id, ts, received_at, is_event, lat, lon, speed_kmh,"
            " heading_deg, acc_on, body_lifted, cover_closed, load) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(
            [
                "text",
                "timestamptz",
                "timestamptz",
                "bool",
                "float8",
                "float8",
                "float4",
                "float4",
                "bool",
                "bool",
                "bool",
                "text",
            ]
        )
        for truck in city.trucks:
            route = permit_route(city, truck.device_id)
            interval_s = float(rng.choice(TRUCK_INTERVALS_S))
            day = first_day
            while day < end_s:
                fixes = truck_day(route, interval_s, day, rng)
                keep = (fixes["ts"] >= start_s) & (fixes["ts"] < end_s)
                ts = fixes["ts"][keep]
                times = _times(ts)
                received = _times(ts + 0.8)
                columns = zip(
                    fixes["lat"][keep].tolist(),
                    fixes["lon"][keep].tolist(),
                    fixes["speed"][keep].tolist(),
                    fixes["heading"][keep].tolist(),
                    fixes["acc_on"][keep].tolist(),
                    fixes["full"][keep].tolist(),
                    strict=True,
                )
                for i, (lat, lon, speed, heading, acc_on, full) in enumerate(columns):
                    copy.write_row(
                        (
                            truck.device_id,
                            times[i],
                            received[i],
                            False,
                            lat,
                            lon,
                            speed,
                            heading,
                            acc_on,
                            False,
                            True,
                            "full" if full and acc_on else "empty",
                        )
                    )
                rows += len(times)
                day += 86400
    return rows


# A case's path; a case is left after a prefix of it (the rest of the period's cases).
CASE_PATH: tuple[tuple[Action, Role], ...] = (
    (Action.REGISTER, Role.INTAKE_OPERATOR),
    (Action.DISPATCH, Role.DISPATCHER),
    (Action.ACCEPT, Role.DEPARTMENT),
    (Action.FEEDBACK, Role.DEPARTMENT),
    (Action.SEND_FOR_VERIFICATION, Role.INTAKE_OPERATOR),
    (Action.VERIFY_PASS, Role.INSPECTOR),
    (Action.CLOSE, Role.SHIFT_LEADER),
)
# How many steps of CASE_PATH cases take, and how often: half are closed.
STEP_WEIGHTS = {0: 8, 1: 8, 2: 8, 3: 10, 4: 6, 5: 5, 7: 55}


def make_cases(url: str, city: City, count: int, start: datetime, end: datetime, seed: int) -> int:
    """Cases reported over [start, end) and moved along the workflow by the store's functions."""
    rng = random.Random(seed)
    setup = load_case_setup(Settings(database_url=url))
    classes = [c for c in load_classification() if c.kind is ClassKind.MATTER][:60]
    grids = [s.grid_code for s in city.spots] or ["320506001001001"]
    steps = list(STEP_WEIGHTS)
    weights = list(STEP_WEIGHTS.values())
    span_s = (end - start).total_seconds()
    reported = sorted(start + timedelta(seconds=rng.uniform(0, span_s)) for _ in range(count))
    events = 0
    with psycopg.connect(url) as conn:
        for n, at in enumerate(reported):
            case_class = rng.choice(classes)
            report = PersonReport(
                source=rng.choice((CaseSource.INSPECTOR, CaseSource.HOTLINE)),
                class_code=case_class.code,
                class_kind=case_class.kind,
                actor_role=Role.INSPECTOR,
                description=f"{case_class.name_zh} 第{n}号",
                grid_code=rng.choice(grids),
            )
            draft = draft_person_case(setup, report)
            record = open_case(conn, setup, draft, at)
            events += 1
            when = at
            for action, role in CASE_PATH[: rng.choices(steps, weights)[0]]:
                when += timedelta(minutes=rng.uniform(5, 240))
                if when >= end:
                    break
                payload: dict[str, str] = {}
                if action is Action.DISPATCH:
                    payload["department"] = draft.department or "city_management"
                elif action is Action.FEEDBACK:
                    payload["note"] = "已处置"
                act_on_case(conn, setup, record.id, action, role, when, payload)
                events += 1
            if n % 200 == 0:
                conn.commit()
    return events


# --- requests ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A view to time: its label, the role that uses it, and the next path to ask for."""

    label: str
    role: AccessRole
    next_path: Callable[[], str]


def endpoints(city: City, seed: int) -> list[Endpoint]:
    """Occupancy now (all lots, one lot), a 24-hour track, the case queues."""
    rng = random.Random(seed)
    lots = [lot.area_id for lot in city.lots]
    trucks = [t.device_id for t in city.trucks]
    return [
        Endpoint(
            "parking occupancy now, every lot", AccessRole.PARKING_OPERATOR, lambda: "/parking/lots"
        ),
        Endpoint(
            "parking occupancy now, one lot with its spots",
            AccessRole.PARKING_OPERATOR,
            lambda: f"/parking/lots/{rng.choice(lots)}",
        ),
        Endpoint(
            "truck track, last 24 h",
            AccessRole.ENFORCEMENT,
            lambda: f"/trucks/{rng.choice(trucks)}/track",
        ),
        Endpoint(
            "case queue: open cases, newest 100", AccessRole.CENTRE, lambda: "/cases?open=true"
        ),
        Endpoint(
            "case queue: overdue (red) cases", AccessRole.CENTRE, lambda: "/cases?overdue=true"
        ),
    ]


def tokens(url: str, roles: set[AccessRole]) -> dict[AccessRole, str]:
    """A bearer token per role, made the way `hub tokens create` makes them."""
    db = Database(url, max_size=1)
    db.open()
    try:
        store = AccessStore(db)
        return {role: store.create_token(f"bench-{role}", role)[1] for role in roles}
    finally:
        db.close()


def time_requests(
    client: httpx.Client, endpoint: Endpoint, token: str, count: int, max_s: float
) -> tuple[list[float], int, list[tuple[float, str]]]:
    """Latencies (ms) of sequential requests (stopping after max_s), the last body's size,
    and the three slowest requests with their paths."""
    headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    paths: list[str] = []
    size = 0
    deadline = time.monotonic() + max_s
    while len(times) < count and (len(times) < 20 or time.monotonic() < deadline):
        path = endpoint.next_path()
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        times.append(elapsed * 1000)
        paths.append(path)
        size = len(response.content)
    slowest = sorted(zip(times, paths, strict=True), reverse=True)[:3]
    return times, size, slowest


# --- plans -------------------------------------------------------------------------------

_PLAN_START = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) UTC \[\d+\] LOG:"
    r"\s+duration: ([0-9.]+) ms\s+plan:"
)


def set_auto_explain(url: str, on: bool) -> None:
    """Log every statement's plan with actual times (on), or nothing (off); reloads the config."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("LOAD 'auto_explain'")  # so this session knows its settings
        conn.execute(
            "ALTER SYSTEM SET auto_explain.log_min_duration = " + ("'0'" if on else "'-1'")
        )
        conn.execute("ALTER SYSTEM SET auto_explain.log_analyze = on")
        conn.execute("ALTER SYSTEM SET auto_explain.log_buffers = on")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)


def plans_in(log_text: str, start: datetime, end: datetime) -> Iterator[tuple[float, str]]:
    """(duration ms, plan) of the auto_explain entries of statements that ran in [start, end].

    The hub's own loops (rules tick, filing, lighting commands) share the connection pool
    with the API, so only statements inside the request's time window are the request's.
    """
    lines = log_text.splitlines()
    i = 0
    while i < len(lines):
        match = _PLAN_START.match(lines[i])
        if match is None:
            i += 1
            continue
        block = [lines[i]]
        i += 1
        while i < len(lines) and not re.match(r"^\d{4}-\d{2}-\d{2} ", lines[i]):
            block.append(lines[i])
            i += 1
        ended = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        duration_ms = float(match[2])
        if ended - timedelta(milliseconds=duration_ms) >= start and ended <= end:
            yield duration_ms, "\n".join(block)


def explain_endpoint(
    client: httpx.Client, endpoint: Endpoint, token: str, log_path: Path
) -> tuple[float, float, list[tuple[float, str]]]:
    """One request with auto_explain on: (request ms, SQL ms, plans of its statements)."""
    offset = log_path.stat().st_size
    start = datetime.now(UTC) - timedelta(milliseconds=2)  # the log has ms resolution
    started = time.perf_counter()
    client.get(endpoint.next_path(), headers={"Authorization": f"Bearer {token}"})
    request_ms = (time.perf_counter() - started) * 1000
    end = datetime.now(UTC) + timedelta(milliseconds=2)
    time.sleep(0.3)  # the server writes the log lines after the statements end
    with log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    plans = list(plans_in(text, start, end))
    return request_ms, sum(ms for ms, _ in plans), plans


# --- main --------------------------------------------------------------------------------


def build_data(stack: Stack, args: argparse.Namespace) -> tuple[City, dict[str, float]]:
    """City, parking and truck history and cases; the seconds each part took and row counts."""
    facts: dict[str, float] = {}
    city = generate_city(
        CitySpec(seed=args.seed, lamps=0, trucks=args.trucks, manholes=0, spots=args.spots)
    )
    url = stack.database_url
    import_city(url, city, stack.work / "city")
    end = datetime.now(UTC)
    start = end - timedelta(days=args.days)
    clock = time.perf_counter()
    facts["parking rows"] = load_parking(url, city, start.timestamp(), end.timestamp(), args.seed)
    facts["parking s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    facts["truck rows"] = load_trucks(url, city, start.timestamp(), end.timestamp(), args.seed)
    facts["truck s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    facts["case events"] = make_cases(url, city, args.cases, start, end, args.seed)
    facts["cases s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    facts["vacuum s"] = time.perf_counter() - clock
    return city, facts


def main() -> int:
    """Build the month, start the hub, time the endpoints, print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=30.0, help="days of history")
    parser.add_argument("--spots", type=int, default=3000, help="parking spots")
    parser.add_argument("--trucks", type=int, default=200)
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument(
        "--max-seconds", type=float, default=40.0, help="stop timing an endpoint after this"
    )
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per endpoint")
    parser.add_argument("--explain", action="store_true", help="print every endpoint's plans")
    parser.add_argument("--seed", type=int, default=7)
    add_json_option(parser)
    args = parser.parse_args()

    figures: list[Figure] = []
    with local_stack("api") as stack:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            # Loaded (idle) in every session, so a reload can turn plans on for the hub's
            # pooled connections later.
            conn.execute("ALTER SYSTEM SET session_preload_libraries = 'auto_explain'")
        set_auto_explain(stack.database_url, on=False)
        city, facts = build_data(stack, args)
        print(
            f"data: {facts['parking rows']:,.0f} parking reports ({facts['parking s']:.0f} s), "
            f"{facts['truck rows']:,.0f} truck fixes ({facts['truck s']:.0f} s), "
            f"{args.cases:,} cases with {facts['case events']:,.0f} events "
            f"({facts['cases s']:.0f} s), VACUUM ANALYZE {facts['vacuum s']:.0f} s",
            flush=True,
        )
        port = free_port()
        env = hub_env(stack, "api", HUB_API_PORT=str(port), HUB_API_HOST="127.0.0.1")
        views = endpoints(city, args.seed)
        secrets = tokens(stack.database_url, {e.role for e in views})
        with (
            running_hub(env, stack.work / "hub.log", api=True),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client,
        ):
            results: list[tuple[Endpoint, list[float], int]] = []
            for view in views:
                time_requests(client, view, secrets[view.role], args.warmup, 60.0)
                times, size, slowest = time_requests(
                    client, view, secrets[view.role], args.requests, args.max_seconds
                )
                results.append((view, times, size))
                print(
                    f"  {view.label}: p50 {percentile(times, 50):.1f} ms, "
                    f"p99 {percentile(times, 99):.1f} ms over {len(times)} requests; slowest "
                    + ", ".join(f"{path} {ms:.0f} ms" for ms, path in slowest),
                    flush=True,
                )
            set_auto_explain(stack.database_url, on=True)
            log_path = stack.postgres.data_dir / "postgres.log"
            for view, times, size in results:
                request_ms, sql_ms, plans = explain_endpoint(
                    client, view, secrets[view.role], log_path
                )
                p99 = percentile(times, 99)
                sql_note = (
                    f"{len(times)} requests, {size:,} B responses; with auto_explain one "
                    f"request took {request_ms:.0f} ms of which SQL {sql_ms:.0f} ms"
                )
                figures += [
                    Figure("api", f"{view.label} p50", percentile(times, 50), "ms", None, sql_note),
                    Figure("api", f"{view.label} p99", p99, "ms", TARGET_P99, None),
                ]
                if args.explain or p99 >= 50.0:
                    print(f"\n--- {view.label}: plans of one request ({sql_ms:.1f} ms SQL)")
                    for _, plan in plans:
                        print(plan)
            set_auto_explain(stack.database_url, on=False)
    publish_figures(
        f"API latency, {args.days:g} days of data: {args.spots:,} spots, {args.trucks} trucks, "
        f"{args.cases:,} cases; sequential requests over HTTP to `hub run`",
        figures,
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
