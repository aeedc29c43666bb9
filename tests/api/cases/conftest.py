"""An API app over a real migrated database with the alarm, case and Open311 routers."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api import alarms, cases, open311
from hub.api.app import create_app
from hub.rules.alarm_fanout import AlarmFanout
from hub.store.alarms import AlarmStore
from hub.store.cases import CaseStore
from hub.store.database import Database
from hub.store.outbox import OutboxTarget
from tests.store.cases.case_fixtures import case_setup

OPEN311_KEY = "test-key-311"


@pytest.fixture
def fanout() -> AlarmFanout:
    """The app's SSE fan-out (also its alarm publisher)."""
    return AlarmFanout()


@pytest.fixture
def client(db: Database, fanout: AlarmFanout) -> Iterator[TestClient]:
    """A test client of the whole API."""
    state = {
        "alarm_store": AlarmStore(db),
        "case_store": CaseStore(db, case_setup(), [OutboxTarget("webhook")]),
        "alarm_fanout": fanout,
        "alarm_publisher": fanout,
        "open311_api_keys": frozenset({OPEN311_KEY}),
    }
    app = create_app(
        db,
        CollectorRegistry(),
        routers=[alarms.router, cases.router, open311.router],
        state=state,
    )
    with TestClient(app) as test_client:
        yield test_client
