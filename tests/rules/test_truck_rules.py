"""Truck rules through the real engine: each violation raises once with evidence; noise does not."""

from datetime import date, timedelta

import orjson

from hub.devices.kinds import Load
from hub.rules.alarm_types import AlarmType
from hub.rules.signals import SignalAction
from hub.rules.truck_params import SegmentParams
from hub.rules.truck_tracks import TrackPoint, segment_track, site_visits
from tests.truck_fixtures import T0, TruckWorld, drive, fix, lonlat, permit


def test_driving_the_route_with_gps_jitter_at_the_corridor_edge_raises_nothing() -> None:
    world = TruckWorld()
    # 45-58 m off the centre line: inside the corridor (50 m) or within the 10 m jitter band
    readings = [
        fix(t, x, 45.0 + (i % 3) * 6.0 if i % 2 else -45.0)
        for i, (t, x) in enumerate(drive(0, 400, 15, 100))
    ]
    world.feed(readings)
    assert world.raised() == []


def test_leaving_the_corridor_for_three_minutes_raises_one_route_deviation() -> None:
    world = TruckWorld()
    world.feed(fix(t, x) for t, x in drive(0, 60, 15, 100))
    world.feed(fix(t, x, 300.0) for t, x in drive(75, 300, 15, 600))
    # one fix cutting back across the route mid-deviation does not end it
    world.feed([fix(315, 2800, 0.0)])
    world.feed(fix(t, x, 300.0) for t, x in drive(330, 420, 15, 2900))
    raised = world.raised(AlarmType.ROUTE_DEVIATION)
    assert len(raised) == 1
    assert raised[0].at == T0 + timedelta(seconds=255)  # 75 s + 180 s
    evidence = raised[0].evidence[-1].values
    assert evidence["load"] == "full"
    details = orjson.loads(orjson.dumps(dict(raised[0].details), default=str))
    assert details["route_distance_m"] > 250
    assert len(details["track"]) >= 5
    # The track as it was at the raising fix, not as it is after the later fixes fed.
    assert details["track"][-1][0] == round((T0 + timedelta(seconds=255)).timestamp() * 1000)
    world.feed(fix(t, x) for t, x in drive(435, 600, 15, 3500))
    cleared = [s for s in world.signals if s.action is SignalAction.CLEAR]
    assert [c.alarm_type for c in cleared] == [AlarmType.ROUTE_DEVIATION]


def test_short_excursions_do_not_raise() -> None:
    world = TruckWorld()
    world.feed(fix(t, x, 300.0 if 60 <= t < 180 else 0.0) for t, x in drive(0, 400, 15, 100))
    assert world.raised() == []


def test_body_lifted_away_from_sites_is_illegal_dumping_with_the_stop_location() -> None:
    world = TruckWorld()
    world.feed(fix(t, x) for t, x in drive(0, 60, 15, 1500))
    world.feed(fix(t, 2100, speed_kmh=0, body_lifted=True) for t in range(75, 300, 15))
    world.feed(fix(t, 2100, speed_kmh=0, load=Load.EMPTY) for t in range(300, 360, 15))
    world.feed(fix(t, x, load=Load.EMPTY) for t, x in drive(360, 480, 15, 2100))
    raised = world.raised()
    assert [s.alarm_type for s in raised] == [AlarmType.ILLEGAL_DUMPING]
    details = orjson.loads(orjson.dumps(dict(raised[0].details), default=str))
    assert details["stop"]["lon"] > 120.62
    cleared = [s for s in world.signals if s.action is SignalAction.CLEAR]
    assert [c.alarm_type for c in cleared] == [AlarmType.ILLEGAL_DUMPING]


def test_unloading_at_the_permitted_disposal_site_is_fine() -> None:
    world = TruckWorld()
    world.feed(fix(t, 5000, speed_kmh=0, body_lifted=True) for t in range(0, 240, 15))
    world.feed(fix(t, 5000, speed_kmh=0, load=Load.EMPTY) for t in range(240, 300, 15))
    assert world.raised() == []


def test_unloading_at_a_disposal_site_not_on_the_permit_is_unapproved_disposal() -> None:
    world = TruckWorld()
    world.feed(fix(t, 2500, 2000, speed_kmh=0) for t in range(0, 120, 15))
    world.feed(fix(t, 2500, 2000, speed_kmh=0, body_lifted=True) for t in range(120, 300, 15))
    raised = world.raised(AlarmType.UNAPPROVED_DISPOSAL)
    assert len(raised) == 1
    assert raised[0].details["site_id"] == "DS-2"
    assert world.raised(AlarmType.ILLEGAL_DUMPING) == []


def test_acc_on_outside_the_permitted_hours_raises_outside_hours() -> None:
    world = TruckWorld([permit(allowed_hours="09:00-16:00")])
    world.feed(fix(t, x) for t, x in drive(0, 300, 15, 100))
    assert [s.alarm_type for s in world.raised()] == [AlarmType.OUTSIDE_HOURS]


def test_parked_outside_hours_is_fine_and_an_expired_permit_is_no_permit() -> None:
    parked = TruckWorld([permit(allowed_hours="09:00-16:00")])
    parked.feed(fix(t, 0, speed_kmh=0, acc_on=False) for t in range(0, 1200, 300))
    assert parked.raised() == []
    expired = TruckWorld([permit(valid_to=date(2025, 6, 30))])
    expired.feed(fix(t, x) for t, x in drive(0, 300, 15, 100))
    assert [s.alarm_type for s in expired.raised()] == [AlarmType.NO_PERMIT]


def test_no_context_loaded_judges_nothing_about_permits() -> None:
    world = TruckWorld(loaded=False)
    world.feed(fix(t, x, 500.0) for t, x in drive(0, 400, 15, 100))
    assert world.raised() == []


def test_cover_open_while_moving_loaded_raises_but_not_while_loading() -> None:
    world = TruckWorld()
    world.feed(
        fix(t, 0, speed_kmh=0, cover_closed=False, load=Load.HALF) for t in range(0, 600, 30)
    )
    assert world.raised() == []
    world.feed(fix(t, x, cover_closed=False) for t, x in drive(600, 720, 15, 100))
    assert [s.alarm_type for s in world.raised()] == [AlarmType.COVER_OPEN_MOVING]


def test_sustained_overspeed_raises_and_the_speed_zone_limit_applies() -> None:
    world = TruckWorld()
    world.feed([fix(0, 3000, speed_kmh=75)])  # one fast fix is not sustained
    world.feed(fix(t, x) for t, x in drive(15, 60, 15, 3100))
    assert world.raised() == []
    world.feed(fix(t, x, 600.0, speed_kmh=45) for t, x in drive(100, 200, 15, 900))  # limit 30
    raised = world.raised(AlarmType.OVERSPEED)
    assert len(raised) == 1
    assert raised[0].details["zone_id"] == "SZ-1"


def test_a_gap_with_acc_on_and_a_jump_are_incomplete_track() -> None:
    world = TruckWorld()
    world.feed(fix(t, x) for t, x in drive(0, 60, 15, 100))
    world.feed([fix(360, 2800)])  # 5 min without a fix, plausible distance
    assert [s.alarm_type for s in world.raised()] == [AlarmType.TRACK_GAP]
    world.feed([fix(375, 2950), fix(390, 2950, 4000.0), fix(405, 3100), fix(420, 3250)])
    assert [s.alarm_type for s in world.raised()] == [AlarmType.TRACK_GAP, AlarmType.TRACK_JUMP]


def test_parked_silence_and_outages_are_no_gap() -> None:
    world = TruckWorld()
    world.feed(fix(t, 0, speed_kmh=0, acc_on=False) for t in range(0, 3000, 300))
    world.feed(fix(t, x) for t, x in drive(3000, 3100, 15, 100))
    world.feed([fix(4000, 3000)])  # 15 min silent with ACC on: offline, not a gap
    assert world.raised() == []


def test_entering_a_restricted_zone_raises() -> None:
    world = TruckWorld()
    world.feed(fix(t, 2500, -1500) for t in range(0, 120, 15))
    assert [s.alarm_type for s in world.raised()] == [AlarmType.RESTRICTED_ZONE]


def test_segmentation_finds_loading_stop_trip_and_unloading_stop_with_site_visits() -> None:
    world = TruckWorld()
    context = world.source.current

    def point(t: float, x_m: float, speed_kmh: float, lifted: bool, load: Load) -> TrackPoint:
        return TrackPoint(
            T0 + timedelta(seconds=t), *_latlon(x_m, 0), speed_kmh, True, lifted, load
        )

    points = [point(t, 0, 0.0, False, Load.HALF) for t in range(0, 600, 30)]
    points += [point(t, x, 35.0, False, Load.FULL) for t, x in drive(600, 1100, 20, 0)]
    points += [point(t, 5000, 0.0, t > 1200, Load.FULL) for t in range(1120, 1500, 30)]
    trips, stops = segment_track(points, context, SegmentParams())
    assert [s.site_id for s in stops] == ["CS-1", "DS-1"]
    assert [s.unloaded for s in stops] == [False, True]
    assert len(trips) == 1
    assert trips[0].distance_m > 4500
    visits = site_visits(points, context)
    assert [v.site_id for v in visits] == ["CS-1", "DS-1"]
    assert visits[0].exited_at is not None


def _latlon(x_m: float, y_m: float) -> tuple[float, float]:
    lon, lat = lonlat(x_m, y_m)
    return lat, lon
