"""Role × resource matrix of the routes whose answer depends on the resource's domain: a device's
raw readings (`/devices/{id}/latest`, `/readings`) and the alarm actions (acknowledge, clear).

The expected answers are written out here, not derived from `DOMAINS`, so a wrong row in the
declaration table fails the test instead of agreeing with it.
"""

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.api.access_table import ALARM_ACTORS, DOMAINS, READING_READERS
from hub.devices.batch import Batch
from hub.devices.decode import DecodeLimits, decode_message
from hub.devices.kinds import Kind
from hub.principals import AccessRole
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction, SourceKind
from hub.store.telemetry import TelemetryWriter
from tests.api.access.access_fixtures import SecuredHub, role_tokens, secured_hub
from tests.payload_examples import example
from tests.store.cases.case_fixtures import alarm_signal, register_device

pytestmark = pytest.mark.integration

R = AccessRole
DEVICES = {
    "lamp-1": Kind.LIGHTING,
    "cab-1": Kind.CABINET,
    "truck-1": Kind.TRUCK,
    "spot-1": Kind.PARKING,
    "mh-1": Kind.MANHOLE,
}
READERS: dict[Kind, set[AccessRole]] = {
    Kind.LIGHTING: {R.ADMIN, R.CENTRE, R.READ_ONLY, R.LIGHTING_CREW},
    Kind.CABINET: {R.ADMIN, R.CENTRE, R.READ_ONLY, R.LIGHTING_CREW},
    Kind.TRUCK: {R.ADMIN, R.CENTRE, R.READ_ONLY, R.ENFORCEMENT},
    Kind.PARKING: {R.ADMIN, R.CENTRE, R.READ_ONLY, R.PARKING_OPERATOR},
    Kind.MANHOLE: {R.ADMIN, R.CENTRE, R.READ_ONLY},
}
"""Who reads a kind's raw readings: its domain's people, the centre, read-only and admin."""

LIGHTING_ACT = {R.ADMIN, R.CENTRE, R.LIGHTING_CREW}
TRUCKS_ACT = {R.ADMIN, R.CENTRE, R.ENFORCEMENT}
PARKING_ACT = {R.ADMIN, R.CENTRE, R.PARKING_OPERATOR}
CENTRE_ACT = {R.ADMIN, R.CENTRE}
ALARMS: list[tuple[SourceKind, str, AlarmType, set[AccessRole]]] = [
    (SourceKind.DEVICE, "lamp-1", AlarmType.LAMP_OUT, LIGHTING_ACT),
    (SourceKind.DEVICE, "cab-1", AlarmType.CABINET_TRIP, LIGHTING_ACT),
    (SourceKind.GROUP, "circuit-7", AlarmType.CIRCUIT_DARK, LIGHTING_ACT),  # by its type
    (SourceKind.DEVICE, "truck-1", AlarmType.OVERSPEED, TRUCKS_ACT),
    (SourceKind.DEVICE, "truck-1", AlarmType.OFFLINE, TRUCKS_ACT),  # by its source's kind
    (SourceKind.DEVICE, "spot-1", AlarmType.OVERSTAY, PARKING_ACT),
    (SourceKind.DEVICE, "spot-1", AlarmType.LOW_BATTERY, PARKING_ACT),
    (SourceKind.DEVICE, "mh-1", AlarmType.TILT, CENTRE_ACT),
    (SourceKind.DEVICE, "mh-1", AlarmType.LOW_BATTERY, CENTRE_ACT),
    (SourceKind.DEVICE, "gone-1", AlarmType.OFFLINE, CENTRE_ACT),  # no domain: the centre's
]
"""Alarms of each domain, and who may acknowledge and clear them."""


@pytest.fixture
def hub(database_url: str) -> Iterator[SecuredHub]:
    for device_id, kind in DEVICES.items():
        register_device(database_url, device_id, kind=kind.value)
    store_one_reading_each(database_url)
    with secured_hub(database_url) as secured:
        yield secured


def store_one_reading_each(database_url: str) -> None:
    now = datetime.now(UTC)
    batch = Batch()
    ts_ms = int((now - timedelta(minutes=5)).timestamp() * 1000)
    for device_id, kind in DEVICES.items():
        batch.add(
            decode_message(
                f"city/{kind.value}/{device_id}/telemetry",
                orjson.dumps(example(kind, ts_ms)),
                now,
                root="city",
                registry=DEVICES,
                limits=DecodeLimits(),
            )
        )
    with psycopg.connect(database_url, autocommit=True) as conn:
        TelemetryWriter(conn).write_batch(batch)


def test_the_declarations_match_the_domain_table() -> None:
    assert {kind for d in DOMAINS for kind in d.kinds} == set(Kind)
    assert sum(len(d.kinds) for d in DOMAINS) == len(Kind)  # each kind in one domain
    assert frozenset().union(*(d.alarm_actors for d in DOMAINS)) == ALARM_ACTORS
    assert R.DEPARTMENT not in READING_READERS


def test_raw_readings_only_to_the_roles_of_the_device_kinds_domain(hub: SecuredHub) -> None:
    tokens = role_tokens(hub.access)
    outcomes: dict[tuple[AccessRole, str], int] = {}
    with TestClient(hub.app) as client:
        for role, secret in tokens.items():
            headers = {"Authorization": f"Bearer {secret}"}
            for device_id, kind in DEVICES.items():
                latest = client.get(f"/devices/{device_id}/latest", headers=headers)
                page = client.get(f"/devices/{device_id}/readings", headers=headers)
                expected = 200 if role in READERS[kind] else 403
                assert latest.status_code == expected, (role, device_id, latest.text)
                assert page.status_code == expected, (role, device_id, page.text)
                outcomes[(role, device_id)] = latest.status_code
                if expected == 200:
                    assert latest.json()["device_id"] == device_id
                    assert page.json()["count"] == 1
                elif any(role in r for r in READERS.values()):  # else refused for every kind
                    assert f"readings of {kind} devices" in latest.json()["detail"]
            # an unknown device is 404 for every role that reads some kind, not a 403
            unknown = client.get("/devices/nope/readings", headers=headers)
            reads_some = role is R.ADMIN or any(role in r for r in READERS.values())
            assert unknown.status_code == (404 if reads_some else 403), role
    assert outcomes[(R.LIGHTING_CREW, "truck-1")] == 403  # a crew does not read truck positions
    assert outcomes[(R.ENFORCEMENT, "truck-1")] == 200
    assert sum(code == 200 for code in outcomes.values()) == sum(
        len(r) for r in {device_id: READERS[kind] for device_id, kind in DEVICES.items()}.values()
    )


def raise_alarm(hub: SecuredHub, source_kind: SourceKind, source_id: str, kind: AlarmType) -> int:
    now = datetime.now(UTC)
    signal = alarm_signal(
        SignalAction.RAISE, now, source_id=source_id, alarm_type=kind, severity=Severity.MAJOR
    )
    signal = dataclasses.replace(signal, source_kind=source_kind)
    (change,) = hub.app.state.alarm_store.apply([signal], now)
    alarm_id: int = change.alarm.id
    return alarm_id


def test_alarm_actions_only_to_the_roles_of_the_alarms_domain(hub: SecuredHub) -> None:
    tokens = role_tokens(hub.access)
    refused = acted = 0
    with TestClient(hub.app) as client:
        for source_kind, source_id, alarm_type, actors in ALARMS:
            for role, secret in tokens.items():
                headers = {"Authorization": f"Bearer {secret}"}
                alarm_id = raise_alarm(hub, source_kind, source_id, alarm_type)
                ack = client.post(f"/alarms/{alarm_id}/acknowledge", headers=headers, json={})
                clear = client.post(f"/alarms/{alarm_id}/clear", headers=headers, json={})
                case = (role, source_id, alarm_type)
                if role in actors:
                    assert (ack.status_code, clear.status_code) == (200, 200), (case, ack.text)
                    assert ack.json()["acknowledged_by"].startswith("token:")
                    assert clear.json()["state"] == "cleared"
                    acted += 1
                else:
                    assert (ack.status_code, clear.status_code) == (403, 403), (case, ack.text)
                    assert f"role {role} may not" in ack.json()["detail"]
                    still = client.get(
                        f"/alarms/{alarm_id}",
                        headers={"Authorization": f"Bearer {tokens[R.ADMIN]}"},
                    )
                    assert still.json()["state"] == "active", case  # nothing changed
                    refused += 1
                    # leave no open alarm behind for the next role
                    hub.app.state.alarm_store.clear(alarm_id, "test", datetime.now(UTC), "")
    assert acted == sum(len(actors) for *_, actors in ALARMS)
    assert refused == len(ALARMS) * len(AccessRole) - acted


def test_an_alarm_that_does_not_exist_is_404_for_actors_and_403_for_others(
    hub: SecuredHub,
) -> None:
    tokens = role_tokens(hub.access)
    with TestClient(hub.app) as client:
        for role, secret in tokens.items():
            response = client.post(
                "/alarms/999999/acknowledge", headers={"Authorization": f"Bearer {secret}"}
            )
            expected = 404 if role in ALARM_ACTORS or role is R.ADMIN else 403
            assert response.status_code == expected, (role, response.text)
