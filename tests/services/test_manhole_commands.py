"""The recalibrate command's next step: send, resend, wait, apply, fail or expire."""

from datetime import UTC, datetime, timedelta

import pytest

from hub.services.manholes import (
    StepKind,
    decide_recalibration_step,
    recalibrate_document,
)
from hub.store.manholes import PendingRecalibration

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
RESEND = timedelta(minutes=10)


def _pending(
    *,
    sent_min_ago: float | None = None,
    ack: str | None = None,
    detail: str | None = None,
    expires_in_min: float = 60,
) -> PendingRecalibration:
    return PendingRecalibration(
        command_id="recal-1",
        device_id="MH-1",
        baseline_tilt_deg=4.25,
        attempts=0 if sent_min_ago is None else 1,
        sent_at=None if sent_min_ago is None else NOW - timedelta(minutes=sent_min_ago),
        expires_at=NOW + timedelta(minutes=expires_in_min),
        ack_result=ack,
        ack_detail=detail,
    )


@pytest.mark.parametrize(
    ("pending", "expected"),
    [
        (_pending(), StepKind.SEND),
        (_pending(sent_min_ago=2), StepKind.WAIT),
        (_pending(sent_min_ago=10), StepKind.SEND),
        (_pending(sent_min_ago=2, ack="ok"), StepKind.APPLY),
        (_pending(sent_min_ago=2, ack="rejected"), StepKind.FAIL),
        (_pending(sent_min_ago=30, expires_in_min=0), StepKind.EXPIRE),
        # an ack that came just before the deadline still counts
        (_pending(sent_min_ago=30, ack="ok", expires_in_min=-1), StepKind.APPLY),
    ],
)
def test_next_step(pending: PendingRecalibration, expected: StepKind) -> None:
    assert decide_recalibration_step(pending, NOW, RESEND).kind is expected


def test_a_failure_keeps_the_devices_reason() -> None:
    step = decide_recalibration_step(_pending(ack="error", detail="sensor busy"), NOW, RESEND)
    assert step.detail == "cover answered error: sensor busy"
    expired = decide_recalibration_step(_pending(sent_min_ago=30, expires_in_min=-5), NOW, RESEND)
    assert expired.detail == "no answer after 1 attempt(s)"


def test_command_document() -> None:
    assert recalibrate_document(_pending(), NOW) == {
        "command_id": "recal-1",
        "action": "recalibrate",
        "baseline_tilt_deg": 4.25,
        "ts": int(NOW.timestamp() * 1000),
        "expires_at": int((NOW + timedelta(hours=1)).timestamp() * 1000),
    }
