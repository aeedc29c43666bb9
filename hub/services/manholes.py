"""Manhole recalibration as a device command: send, resend, and apply on the cover's ack.

`POST /manholes/{id}/recalibrate` and `python -m hub manholes recalibrate` record a pending
command (table `manhole_calibrations`). The `run` composition starts
`ManholeCommandService`: about once a `tick_s` it sends pending commands on
`<root>/manhole/<id>/cmd` (QoS 1), sends them again after `resend_s` without an answer,
and settles them from the acknowledgements ingest stored in `command_acks`: `ok` makes the
new baseline the registry attribute the tilt rule reads (picked up at the next registry
refresh); any other result fails the command; none before `expires_at` expires it.
"""

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from hub.devices.kinds import Kind
from hub.store import manholes as store
from hub.store.database import Database
from hub.store.manholes import PendingRecalibration

log = logging.getLogger(__name__)

RECALIBRATE_ACTION = "recalibrate"
SendCommand = Callable[[Kind, str, Mapping[str, object]], bool]


class StepKind(StrEnum):
    """What to do with a pending recalibrate command now."""

    WAIT = "wait"
    SEND = "send"
    APPLY = "apply"
    FAIL = "fail"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class Step:
    """The next step for one command, with the reason kept on a failed or expired one."""

    kind: StepKind
    detail: str | None = None


def decide_recalibration_step(
    command: PendingRecalibration, now: datetime, resend_after: timedelta
) -> Step:
    """Apply on an `ok` ack, fail on any other, expire when late, else send (again) or wait."""
    if command.ack_result == "ok":
        return Step(StepKind.APPLY)
    if command.ack_result is not None:
        detail = f"cover answered {command.ack_result}"
        if command.ack_detail:
            detail += f": {command.ack_detail}"
        return Step(StepKind.FAIL, detail)
    if now >= command.expires_at:
        return Step(StepKind.EXPIRE, f"no answer after {command.attempts} attempt(s)")
    if command.sent_at is None or now - command.sent_at >= resend_after:
        return Step(StepKind.SEND)
    return Step(StepKind.WAIT)


def recalibrate_document(command: PendingRecalibration, now: datetime) -> dict[str, object]:
    """The JSON body on `<root>/manhole/<id>/cmd`: take `baseline_tilt_deg` as the reference."""
    return {
        "command_id": command.command_id,
        "action": RECALIBRATE_ACTION,
        "baseline_tilt_deg": command.baseline_tilt_deg,
        "ts": int(now.timestamp() * 1000),
        "expires_at": int(command.expires_at.timestamp() * 1000),
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ManholeCommandService:
    """Sends and settles recalibrate commands on a thread of its own."""

    def __init__(
        self,
        db: Database,
        send: SendCommand,
        *,
        resend_after: timedelta,
        tick_s: float = 1.0,
        clock: Callable[[], datetime] = _utc_now,
        on_duty: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = db
        self._on_duty = on_duty
        self._send = send
        self._resend_after = resend_after
        self._tick_s = tick_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def settle(self, now: datetime) -> dict[StepKind, int]:
        """One pass over pending commands; counts per step taken."""
        counts: dict[StepKind, int] = {}
        with self._db.connection() as conn:
            for command in store.fetch_pending_recalibrations(conn):
                step = decide_recalibration_step(command, now, self._resend_after)
                if step.kind is StepKind.WAIT:
                    continue
                if step.kind is StepKind.SEND:
                    document = recalibrate_document(command, now)
                    if not self._send(Kind.MANHOLE, command.device_id, document):
                        continue
                    store.mark_recalibration_sent(conn, command.command_id, now)
                elif step.kind is StepKind.APPLY:
                    store.apply_recalibration(conn, command.command_id, now)
                    log.info(
                        "cover %s acknowledged recalibration %s: baseline %.2f deg",
                        command.device_id,
                        command.command_id,
                        command.baseline_tilt_deg,
                    )
                else:
                    state = "failed" if step.kind is StepKind.FAIL else "expired"
                    store.finish_recalibration(conn, command.command_id, state, now, step.detail)
                    log.warning(
                        "recalibration %s of %s %s: %s",
                        command.command_id,
                        command.device_id,
                        state,
                        step.detail,
                    )
                counts[step.kind] = counts.get(step.kind, 0) + 1
        return counts

    def _loop(self) -> None:
        while not self._stop.wait(self._tick_s):
            if not self._on_duty():  # in a cluster, the leader sends the commands
                continue
            try:
                self.settle(self._clock())
            except Exception:
                log.exception("manhole command pass failed; will retry")

    def start(self) -> None:
        """Start the settling thread."""
        self._thread = threading.Thread(target=self._loop, name="manhole-commands", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
