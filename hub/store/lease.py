"""Leadership among the hubs of a cluster: a PostgreSQL session advisory lock.

Some duties must run in one hub only (firing lighting schedules, sending and expiring
device commands): the hub holding the lock does them. The lock lives as long as the
holder's database session, so a hub that dies or loses its connection frees it and
another hub takes over within one `check_s`. A holder that loses its connection stops
counting itself leader at once, before it knows whether another hub took over.
"""

import logging
import threading

import psycopg

log = logging.getLogger(__name__)

# pg_try_advisory_lock key of the cluster's duties ("hub lead" in ASCII).
LEADER_LOCK_ID = 0x6875_625F_6C65_6164


class LeaderLease:
    """Tries to hold the cluster's leader lock on a dedicated connection; `held` says if it does."""

    def __init__(self, url: str, *, check_s: float = 2.0, lock_id: int = LEADER_LOCK_ID) -> None:
        self._url = url
        self._check_s = check_s
        self._lock_id = lock_id
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._held = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def held(self) -> bool:
        """Whether this process is the leader now."""
        return self._held.is_set()

    def wait_held(self, timeout_s: float) -> bool:
        """Wait until leadership is taken (or the timeout); whether it is held."""
        return self._held.wait(timeout_s)

    def check(self) -> bool:
        """One attempt: keep or take the lock; drop the connection when it fails."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            if self._held.is_set():
                self._conn.execute("SELECT 1")  # the session, and so the lock, is still there
                return True
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_id,)).fetchone()
        except psycopg.Error as err:
            if self._held.is_set():
                log.warning("leader lock connection lost (%s); no longer leader", err)
            self._held.clear()
            self._close()
            return False
        if row is not None and row[0]:
            log.info("this hub is now the cluster leader")
            self._held.set()
        return self._held.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self._check_s)
        self._held.clear()
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:  # pragma: no cover - closing a broken connection
                log.debug("closing the leader connection failed", exc_info=True)
            self._conn = None

    def start(self) -> None:
        """Take the lock if free, then keep checking on a thread of its own."""
        self.check()
        self._thread = threading.Thread(target=self._run, name="leader-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Give leadership up (closing the session releases the lock)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
