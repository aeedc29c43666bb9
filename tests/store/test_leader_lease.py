"""The cluster's leader lock against a real PostgreSQL: one holder; handed over when it goes."""

import psycopg
import pytest

from hub.store.lease import LeaderLease

pytestmark = pytest.mark.integration

LOCK = 4242_0001  # a key of this test's own, apart from the hubs' one


def test_one_leader_then_the_next_when_it_stops(database_url: str) -> None:
    first = LeaderLease(database_url, check_s=0.1, lock_id=LOCK)
    second = LeaderLease(database_url, check_s=0.1, lock_id=LOCK)
    first.start()
    second.start()
    try:
        assert first.held()
        assert not second.wait_held(0.5)
        first.stop()
        assert not first.held()
        assert second.wait_held(10)
    finally:
        first.stop()
        second.stop()


def test_a_leader_whose_session_ends_steps_down(database_url: str) -> None:
    lease = LeaderLease(database_url, check_s=3600, lock_id=LOCK)
    lease.start()
    try:
        assert lease.held()
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND objid = %s",
                (LOCK,),
            )
        assert not lease.check()  # the session is gone: no longer leader
        assert lease.check()  # a new session takes the free lock again
    finally:
        lease.stop()
