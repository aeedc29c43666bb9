"""The fully assembled, secured API over a real database, and credentials for every role."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from hub.api import alarms, cases, open311
from hub.api.access import AccessConfig
from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.api.secure import secure_app
from hub.principals import AccessRole, hash_password
from hub.rules.alarm_fanout import AlarmFanout
from hub.store.access import AccessStore
from hub.store.alarms import AlarmStore
from hub.store.cases import CaseStore
from hub.store.database import Database
from hub.store.outbox import OutboxTarget
from tests.store.cases.case_fixtures import case_setup

PASSWORD = "correct horse battery"  # noqa: S105 - a test user's password
DEPARTMENT = "drainage"
TEST_HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)
"""argon2id at its cheapest: tests log in hundreds of times (production takes 64 MiB, ~150 ms)."""


@dataclass
class SecuredHub:
    """The app and what a test needs around it."""

    app: FastAPI
    db: Database
    access: AccessStore
    fanout: AlarmFanout
    case_store: CaseStore


def all_routers(extra: list[APIRouter] | None = None) -> list[APIRouter]:
    """Every router `hub run` mounts: alarms, cases, Open311 and the domain routers."""
    return [alarms.router, cases.router, open311.router, *domain_routers(), *(extra or [])]


@contextmanager
def secured_hub(
    database_url: str,
    extra: list[APIRouter] | None = None,
    config: AccessConfig | None = None,
) -> Iterator[SecuredHub]:
    """`create_app` with every router, wrapped by `secure_app`, like `hub run` builds it."""
    db = Database(database_url, max_size=6)
    db.open()
    fanout = AlarmFanout()
    case_store = CaseStore(db, case_setup(), [OutboxTarget("webhook")])
    state = {
        "alarm_store": AlarmStore(db),
        "case_store": case_store,
        "alarm_fanout": fanout,
        "alarm_publisher": fanout,
        "open311_api_keys": frozenset({"key-311"}),
        # `hub run` hands the API its MQTT command sender; here commands go nowhere.
        "truck_commands": lambda kind, device_id, document: True,
    }
    app = create_app(db, CollectorRegistry(), routers=all_routers(extra), state=state)
    access = AccessStore(db)
    secure_app(app, access, config or AccessConfig(password_hasher=TEST_HASHER))
    try:
        yield SecuredHub(app, db, access, fanout, case_store)
    finally:
        db.close()


def role_tokens(access: AccessStore) -> dict[AccessRole, str]:
    """A bearer secret per role (the department one for DEPARTMENT)."""
    return {
        role: access.create_token(
            f"test-{role}",
            role,
            department=DEPARTMENT if role is AccessRole.DEPARTMENT else None,
        )[1]
        for role in AccessRole
    }


def add_users(access: AccessStore) -> dict[str, AccessRole]:
    """One console user per role, all with PASSWORD (cheap argon2id for tests)."""
    users = {
        "admin": AccessRole.ADMIN,
        "centre": AccessRole.CENTRE,
        # a second centre user, the on-site inspector: who dispatched a case may not verify it
        "inspector": AccessRole.CENTRE,
        "drainage": AccessRole.DEPARTMENT,
        "water": AccessRole.DEPARTMENT,
        "crew": AccessRole.LIGHTING_CREW,
        "enforcer": AccessRole.ENFORCEMENT,
        "parker": AccessRole.PARKING_OPERATOR,
        "viewer": AccessRole.READ_ONLY,
    }
    hashed = hash_password(PASSWORD, hasher=TEST_HASHER)
    for name, role in users.items():
        department = None
        if role is AccessRole.DEPARTMENT:
            department = DEPARTMENT if name == "drainage" else "water_supply"
        access.save_user(name, role, hashed, department=department, display_name=name)
    return users
