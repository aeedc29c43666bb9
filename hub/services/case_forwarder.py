"""Delivers case events from the outbox to external case systems over HTTP.

Targets: a webhook (every event as JSON, signed with HMAC-SHA256 in
`X-Hub-Signature-256: sha256=<hex>`, with an `Idempotency-Key` the receiver deduplicates
on) and a city's Open311 GeoReport v2 endpoint (new cases as service requests). A case's
events go strictly in order: a later event waits while an earlier one fails. Failed
deliveries are retried with exponential backoff; state lives in the outbox table, so
a restart picks up where it stopped.
"""

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
import orjson

from hub.cases.open311 import (
    Open311Error,
    build_service_request_form,
    parse_service_request_response,
    requests_url,
)
from hub.cases.workflow import Action, CaseSource
from hub.settings import Settings
from hub.store.outbox import DeliveryOutcome, Outbox, OutboxItem, OutboxTarget

log = logging.getLogger(__name__)

WEBHOOK_TARGET = "webhook"
OPEN311_TARGET = "open311"
USER_AGENT = "city-telemetry-hub/0.1"
_ERROR_BODY_CHARS = 300

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


def sign_body(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value of a body: `sha256=` + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def outbox_targets(settings: Settings) -> list[OutboxTarget]:
    """The external systems configured: what the case store queues outbox rows for."""
    targets: list[OutboxTarget] = []
    if settings.case_webhook_url:
        targets.append(OutboxTarget(WEBHOOK_TARGET))
    if settings.case_open311_url:
        # Open311 has no way to receive transitions, and public reports came from there.
        targets.append(
            OutboxTarget(
                OPEN311_TARGET,
                actions=frozenset({Action.REPORT}),
                skip_sources=frozenset({CaseSource.OPEN311}),
            )
        )
    return targets


class Delivery(Protocol):
    """One external system: its outbox target name and how one item is sent."""

    @property
    def target(self) -> str:
        """The outbox target this delivers."""
        ...

    def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        """Send one outbox item; never raises for a delivery failure."""
        ...


def _failure(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:_ERROR_BODY_CHARS]}"


class WebhookDelivery:
    """POSTs each case event as signed JSON."""

    target = WEBHOOK_TARGET

    def __init__(self, client: httpx.Client, url: str, secret: bytes) -> None:
        self._client = client
        self._url = url
        self._secret = secret

    def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        """POST the stored body; any 2xx is delivered."""
        body = orjson.dumps(item.body)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": item.idempotency_key,
            "X-Hub-Signature-256": sign_body(self._secret, body),
            "X-Hub-Event": item.event_type,
            "X-Hub-Delivery": str(item.id),
        }
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as err:
            return DeliveryOutcome(False, f"{type(err).__name__}: {err}")
        if response.is_success:
            return DeliveryOutcome(True)
        return DeliveryOutcome(False, _failure(response))


class Open311Delivery:
    """Files new cases into a city's Open311 endpoint and keeps the id it gives."""

    target = OPEN311_TARGET

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        api_key: str,
        jurisdiction_id: str | None = None,
    ) -> None:
        self._client = client
        self._url = requests_url(base_url)
        self._api_key = api_key
        self._jurisdiction_id = jurisdiction_id

    def deliver(self, item: OutboxItem) -> DeliveryOutcome:
        """POST requests.json with the case's class, location and description."""
        case = item.body.get("case")
        if not isinstance(case, dict):
            return DeliveryOutcome(False, "outbox body has no case")
        try:
            form = build_service_request_form(
                case, api_key=self._api_key, jurisdiction_id=self._jurisdiction_id
            )
            response = self._client.post(self._url, data=form, headers={"User-Agent": USER_AGENT})
            if not response.is_success:
                return DeliveryOutcome(False, _failure(response))
            receipt = parse_service_request_response(response.content)
        except httpx.HTTPError as err:
            return DeliveryOutcome(False, f"{type(err).__name__}: {err}")
        except Open311Error as err:
            return DeliveryOutcome(False, f"Open311 {err.code}: {err.description}")
        return DeliveryOutcome(True, external_id=receipt.service_request_id or receipt.token)


class CaseForwarder:
    """Runs the deliveries of every configured target until stopped."""

    def __init__(
        self,
        outbox: Outbox,
        deliveries: Sequence[Delivery],
        *,
        retry_base: timedelta,
        retry_longest: timedelta,
        poll_s: float = 1.0,
        clock: Clock = utc_now,
    ) -> None:
        self._outbox = outbox
        self._deliveries = tuple(deliveries)
        self._retry_base = retry_base
        self._retry_longest = retry_longest
        self._poll_s = poll_s
        self._clock = clock
        self.delivered = 0
        self.failed = 0

    def deliver_once(self) -> int:
        """One pass over every target; return how many items were delivered."""
        delivered_now = 0
        for delivery in self._deliveries:
            delivered, failed = self._outbox.deliver_due(
                delivery.target,
                self._clock(),
                delivery.deliver,
                retry_base=self._retry_base,
                retry_longest=self._retry_longest,
            )
            if failed:
                log.warning(
                    "%d %s deliveries failed; they will be retried", failed, delivery.target
                )
            self.delivered += delivered
            self.failed += failed
            delivered_now += delivered
        return delivered_now

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; a pass that delivered something is followed at once."""
        while not stop.is_set():
            try:
                delivered = self.deliver_once()
            except Exception:
                # The store's errors (database away) end this pass only; the rows wait.
                log.exception("case forwarding pass failed; retrying")
                delivered = 0
            if not delivered:
                stop.wait(self._poll_s)


def build_forwarder(
    settings: Settings, outbox: Outbox, client: httpx.Client
) -> CaseForwarder | None:
    """The forwarder for the configured targets, None when none is configured."""
    deliveries: list[Delivery] = []
    if settings.case_webhook_url and settings.case_webhook_secret:
        deliveries.append(
            WebhookDelivery(
                client,
                settings.case_webhook_url,
                settings.case_webhook_secret.get_secret_value().encode(),
            )
        )
    if settings.case_open311_url:
        key = settings.case_open311_api_key
        deliveries.append(
            Open311Delivery(
                client,
                settings.case_open311_url,
                key.get_secret_value() if key else "",
                settings.case_open311_jurisdiction_id,
            )
        )
    if not deliveries:
        return None
    return CaseForwarder(
        outbox,
        deliveries,
        retry_base=timedelta(seconds=settings.case_retry_base_s),
        retry_longest=timedelta(seconds=settings.case_retry_max_s),
    )
