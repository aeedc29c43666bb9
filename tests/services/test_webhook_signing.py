"""Webhook signatures, backoff and which targets a configuration feeds."""

import hashlib
import hmac
from datetime import timedelta

from pydantic import SecretStr

from hub.cases.workflow import Action, CaseSource
from hub.services.case_forwarder import OPEN311_TARGET, WEBHOOK_TARGET, outbox_targets, sign_body
from hub.settings import Settings
from hub.store.outbox import retry_delay


def test_signature_is_hex_hmac_sha256_of_the_body() -> None:
    body = b'{"event_type":"case.report"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign_body(b"s3cret", body) == f"sha256={expected}"


def test_backoff_doubles_up_to_the_longest() -> None:
    base, longest = timedelta(seconds=2), timedelta(seconds=60)
    assert [retry_delay(n, base, longest).total_seconds() for n in range(1, 8)] == [
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert retry_delay(10_000, base, longest) == longest


def test_targets_follow_the_settings() -> None:
    assert outbox_targets(Settings()) == []
    both = outbox_targets(
        Settings(
            case_webhook_url="https://cases.example/hook",
            case_webhook_secret=SecretStr("x"),
            case_open311_url="https://city.example/open311/v2",
        )
    )
    assert [t.name for t in both] == [WEBHOOK_TARGET, OPEN311_TARGET]
    webhook, open311 = both
    assert webhook.takes(Action.CLOSE, CaseSource.OPEN311)
    assert open311.takes(Action.REPORT, CaseSource.SENSOR)
    assert not open311.takes(Action.DISPATCH, CaseSource.SENSOR)
    assert not open311.takes(Action.REPORT, CaseSource.OPEN311)


def test_a_webhook_needs_a_secret() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="HUB_CASE_WEBHOOK_SECRET"):
        Settings(case_webhook_url="https://cases.example/hook")
    with pytest.raises(ValidationError, match="http"):
        Settings(case_open311_url="ftp://city.example")
    assert Settings(open311_api_keys=SecretStr(" a, b ,,")).open311_api_key_set == {"a", "b"}
