"""A database seeded by the simulators through a real hub: 26 hours of a small city, ending
at 23:00 local time (lamps lit, a lamp fault still open), so panels about "now" have data
whatever hour the test runs."""

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from zoneinfo import ZoneInfo

import psycopg
import pytest

from hub.__main__ import main as hub_main
from hub.cases.calendar import WorkingCalendar, load_calendar
from hub.store.cases import CaseStore
from hub.store.database import Database
from tests.hub_process import ROOT, count, hub_env, running_hub, wait_for
from tests.store.cases.case_fixtures import case_setup, hotline_report

SIMULATED = timedelta(hours=26)
STORED_READINGS = (
    "SELECT (SELECT count(*) FROM telemetry_lighting) + (SELECT count(*) FROM telemetry_truck)"
    " + (SELECT count(*) FROM telemetry_parking)"
)
CITY_ZONE = ZoneInfo("Asia/Shanghai")
# offsets from the start, 21:00 local two days before the end
SCENARIO = """\
seed: 5
faults:
  - {fault: lamp_out, at: 1h, duration: 4h}
  - {fault: lamp_out, at: 24h, duration: 6h}
  - {fault: cabinet_trip, at: 3h, duration: 1h}
  - {fault: manhole_tilt, at: 2h, duration: 30h}
  - {fault: manhole_open, at: 3h, duration: 2h}
  - {fault: manhole_water_rising, at: 4h, duration: 4h}
  - {fault: parking_overstay, at: 5h}
random:
  count: 8
  within: 20h
  faults: [truck_illegal_dump, truck_off_route, truck_overspeed, truck_cover_open]
"""


@dataclass(frozen=True, slots=True)
class SeededCity:
    """Where the seed is and which simulated period it covers."""

    database_url: str
    start: datetime
    end: datetime  # of simulated time
    seeded_at: datetime  # cases are filed in wall-clock time, up to here


def last_local_2300(before: datetime) -> datetime:
    """The latest 23:00 in the city's time zone at or before an instant."""
    local = before.astimezone(CITY_ZONE)
    at = local.replace(hour=23, minute=0, second=0, microsecond=0)
    if at > local:
        at -= timedelta(days=1)
    return at.astimezone(UTC)


def overdue_call_times(calendar: WorkingCalendar, before: datetime) -> tuple[datetime, datetime]:
    """09:00 and 10:00 of the latest working day before `before`'s local date.

    A call logged then has its one working hour to register run out that same day, so it is
    overdue at `before` whatever the weekday or holiday the test runs on (a call placed at a
    fixed offset before a Sunday run would still be within its deadline on Monday).
    """
    day: date = calendar.local_date(before) - timedelta(days=1)
    while not calendar.is_working_day(day):
        day -= timedelta(days=1)
    first, second = (
        datetime.combine(day, time_of_day(hour), tzinfo=calendar.tz).astimezone(UTC)
        for hour in (9, 10)
    )
    return first, second


def _clone(admin_url: str, template: str) -> str:
    name = f"hub_g_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'.encode())
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def _stable(url: str, query: str, quiet_s: float, timeout_s: float) -> None:
    """Wait until a count has not moved for quiet_s."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = count(url, query)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def seeded_city(
    pg_admin_url: str,
    migrated_template: str,
    mqtt_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SeededCity]:
    """Generate a small city, register it, and run 26 simulated hours through a hub child."""
    work = tmp_path_factory.mktemp("grafana-seed")
    url = _clone(pg_admin_url, migrated_template)
    city = work / "city"
    py = sys.executable
    subprocess.run(
        [
            *(py, "-m", "simulators", "city", "--out", str(city), "--seed", "5", "--quiet"),
            *("--lamps", "60", "--lamps-per-cabinet", "30", "--trucks", "12"),
            *("--manholes", "40", "--spots", "60"),
        ],
        check=True,
        cwd=ROOT,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUB_DATABASE_URL", url)
        for argv in (
            ["devices", "import", str(city / "devices.csv")],
            ["sites", "import", str(city / "sites.geojson")],
            ["permits", "import", str(city / "permits.json")],
            [
                "parking",
                "import",
                "--lots",
                str(city / "lots.geojson"),
                "--zones",
                str(city / "zones.geojson"),
            ],
        ):
            assert hub_main(argv) == 0, argv
    root = f"g{uuid.uuid4().hex[:10]}"
    (work / "scenario.yaml").write_text(SCENARIO)
    end = last_local_2300(datetime.now(UTC) - timedelta(minutes=1))
    start = end - SIMULATED
    env = hub_env(url, mqtt_url, root, HUB_ALARM_TICK_S="0.2", HUB_MODBUS_ENABLED="false")
    with running_hub(env, work / "hub.log"):
        subprocess.run(
            [
                *(py, "-m", "simulators", "run", "--city", str(city), "--speed", "0"),
                *("--mqtt-url", mqtt_url, "--root", root, "--start", start.isoformat()),
                *("--duration", f"{SIMULATED.total_seconds():.0f}s"),
                *("--scenario", str(work / "scenario.yaml"), "--truth", str(work / "truth.jsonl")),
                "--quiet",
            ],
            check=True,
            cwd=ROOT,
            env=env,
        )
        _stable(
            url,
            STORED_READINGS,
            1.0,
            60,
        )
        wait_for(lambda: count(url, "SELECT count(*) FROM cases") > 0, 15, "filed cases")
        _stable(url, "SELECT count(*) FROM cases", 1.0, 15)
    # Two hotline calls logged on the last working day and never registered: overdue cases,
    # by the workflow's own deadline arithmetic with its clock set to the call.
    database = Database(url, max_size=2)
    database.open()
    try:
        cases = CaseStore(database, case_setup())
        calls_at = overdue_call_times(load_calendar(), datetime.now(UTC))
        for called_at, class_code in zip(calls_at, ("01003", "06011"), strict=True):
            cases.report(hotline_report(class_code), called_at)
    finally:
        database.close()
    yield SeededCity(url, start, end, datetime.now(UTC))
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        name = url.rpartition("/")[2]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
