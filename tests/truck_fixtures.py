"""A small truck world for the rule tests: one route east, sites at its ends, a zone."""

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind, Load
from hub.devices.trucks import TruckPayload
from hub.geometry import LocalProjection
from hub.rules.alarm_types import AlarmType
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.signals import AlarmSignal, SignalAction
from hub.rules.truck_context import TruckContext, TruckContextSource
from hub.rules.truck_records import Permit, Site, SiteType, Zone, ZoneType
from hub.rules.trucks import build_rules

# 2026-03-02 13:00 UTC = 21:00 in Suzhou, inside the night permit 20:00-06:00
T0 = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
GRID = LocalProjection(31.30, 120.62)
TRUCK = "TRK-0001"


def lonlat(x_m: float, y_m: float) -> tuple[float, float]:
    """WGS-84 [lon, lat] of metres east/north of the grid centre."""
    return (
        GRID.centre_lon + x_m / GRID.m_per_deg_lon,
        GRID.centre_lat + y_m / GRID.m_per_deg_lat,
    )


def square(x_m: float, y_m: float, half_m: float) -> list[tuple[float, float]]:
    """A closed square ring around a point."""
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    return [lonlat(x_m + dx * half_m, y_m + dy * half_m) for dx, dy in corners]


SITES = [
    Site(site_id="CS-1", site_type=SiteType.CONSTRUCTION, ring=square(0, 0, 50)),
    Site(site_id="DS-1", site_type=SiteType.DISPOSAL, ring=square(5000, 0, 50)),
    Site(site_id="DS-2", site_type=SiteType.DISPOSAL, ring=square(2500, 2000, 50)),
]
ZONES = [
    Zone(zone_id="RZ-1", zone_type=ZoneType.RESTRICTED, ring=square(2500, -1500, 200)),
    Zone(zone_id="SZ-1", zone_type=ZoneType.SPEED, ring=square(1000, 600, 250), speed_limit_kmh=30),
]


def permit(**changes: object) -> Permit:
    """The test truck's permit: CS-1 east to DS-1, night hours."""
    fields: dict[str, object] = {
        "permit_id": "PMT-1",
        "truck_id": TRUCK,
        "company": "苏州市测试渣土运输有限公司",
        "origin_site_id": "CS-1",
        "disposal_site_ids": ["DS-1"],
        "route": [lonlat(0, 0), lonlat(5000, 0)],
        "corridor_m": 50.0,
        "allowed_hours": "20:00-06:00",
        "valid_from": date(2025, 1, 1),
        "valid_to": date(2030, 12, 31),
    }
    fields.update(changes)
    return Permit.model_validate(fields)


def fix(
    t_s: float,
    x_m: float,
    y_m: float = 0.0,
    *,
    speed_kmh: float = 35.0,
    acc_on: bool = True,
    body_lifted: bool = False,
    cover_closed: bool = True,
    load: Load = Load.FULL,
    device_id: str = TRUCK,
) -> Reading:
    """A truck position at T0 + t_s, x_m east and y_m north of the grid centre."""
    ts = T0 + timedelta(seconds=t_s)
    lon, lat = lonlat(x_m, y_m)
    payload = TruckPayload(
        ts=round(ts.timestamp() * 1000),
        lat=lat,
        lon=lon,
        speed_kmh=speed_kmh,
        heading_deg=90.0,
        acc_on=acc_on,
        body_lifted=body_lifted,
        cover_closed=cover_closed,
        load=load,
    )
    return Reading(Kind.TRUCK, device_id, Channel.TELEMETRY, ts, ts, payload)


class TruckWorld:
    """A rule engine with only the truck rules, over a context the test chooses."""

    def __init__(self, permits: Sequence[Permit] = (), loaded: bool = True) -> None:
        self.source = TruckContextSource()
        if loaded:
            self.source.replace(TruckContext.build(SITES, permits or [permit()], ZONES))
        rules = build_rules(self.source)
        config = load_rules_config(None, {r.name: r.params_model for r in rules})
        self.engine = RuleEngine(config, [DeviceInfo(TRUCK, Kind.TRUCK)], now=T0, rules=rules)
        self.signals: list[AlarmSignal] = []

    def feed(self, readings: Iterable[Reading]) -> list[AlarmSignal]:
        """Process readings one batch each (in order) and collect the signals."""
        new: list[AlarmSignal] = []
        last = T0
        for reading in readings:
            new.extend(self.engine.process([reading]))
            last = reading.received_at
        new.extend(self.engine.tick(last + timedelta(seconds=11)))  # past the reorder hold
        self.signals.extend(new)
        return new

    def raised(self, alarm_type: AlarmType | None = None) -> list[AlarmSignal]:
        """RAISE signals so far (of one type)."""
        return [
            s
            for s in self.signals
            if s.action is SignalAction.RAISE and (alarm_type is None or s.alarm_type is alarm_type)
        ]


def drive(
    start_s: float, end_s: float, interval_s: float, x0_m: float, speed_kmh: float = 35.0
) -> list[tuple[float, float]]:
    """(t, x) pairs of a truck driving east along the route."""
    out = []
    t = start_s
    while t <= end_s:
        out.append((t, x0_m + (t - start_s) * speed_kmh / 3.6))
        t += interval_s
    return out
