"""One delivery attempt: the signed POST, then what its answer means for the delivery and its endpoint.

Sending (`outbound_send`) touches no database: the worker runs it in a small thread pool with one
pooled httpx.Client per run, outside any transaction. Recording (`attempts_record`) is one short
transaction on the worker's own connection, and only if the delivery still carries the lease the
worker claimed it with: a worker whose lease ran out and was overtaken records nothing (the other
worker's attempt is the one that counts). The answers that arrived while earlier ones were being
recorded are recorded together, in one transaction.

What an answer means:
- any 2xx: `delivered`; the endpoint's run of failures (failing_since) ends;
- anything else (another status, a redirect, a timeout, a refused connection): the delivery is retried
  after the `deliver-notifications` job policy's backoff (base * multiplier**(n-1), capped, plus
  jitter: apps.common.jobs.policy.retry_delay_seconds), unless that retry would fall after its
  FULFILLMENT_RETRY_WINDOW_SECONDS, in which case it is left `failed`;
- an endpoint whose failures started FULFILLMENT_DISABLE_AFTER_SECONDS ago or more is disabled, with
  the reason its app's owners see in the admin. Its pending deliveries wait (no claim takes them)
  until it is enabled again or their window ends (apps.entitlements.notifications.claims).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

import httpx
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.common.jobs.policy import retry_delay_seconds
from apps.entitlements.notifications.models import Delivery, DeliveryAttempt, NotificationEndpoint
from apps.entitlements.notifications.signing import (
    NOTIFICATION_ID_HEADER,
    SIGNATURE_HEADER,
    signature_header,
    signing_secrets,
)
from billing_service.beat_schedule import JobPolicySpec

log = structlog.get_logger("billing.notifications")

USER_AGENT = "billing-service/notifications"
ERROR_LENGTH = 500
REASON_LENGTH = 300


@dataclass(frozen=True)
class FulfillmentConfig:
    """The worker's settings, read once per run (tests change them with the settings fixture)."""

    enabled: bool
    poll_interval_seconds: int
    batch_size: int
    timeout_seconds: float
    retry_window_seconds: int
    disable_after_seconds: int
    lease_seconds: int


def fulfillment_config() -> FulfillmentConfig:
    return FulfillmentConfig(
        enabled=bool(settings.FULFILLMENT_WORKER_ENABLED),
        poll_interval_seconds=int(settings.FULFILLMENT_POLL_INTERVAL_SECONDS),
        batch_size=int(settings.FULFILLMENT_BATCH_SIZE),
        timeout_seconds=float(settings.FULFILLMENT_TIMEOUT_SECONDS),
        retry_window_seconds=int(settings.FULFILLMENT_RETRY_WINDOW_SECONDS),
        disable_after_seconds=int(settings.FULFILLMENT_DISABLE_AFTER_SECONDS),
        lease_seconds=int(settings.FULFILLMENT_LEASE_SECONDS),
    )


@dataclass(frozen=True)
class Outbound:
    """What to send for one claimed delivery, prepared on the worker's thread (no database after this)."""

    delivery_id: int
    notification_id: str
    endpoint_id: int
    url: str
    body: bytes
    secrets: tuple[str, ...]


def outbound_prepare(delivery: Delivery, *, now: datetime) -> Outbound:
    notification = delivery.notification
    body = json.dumps(notification.envelope(), separators=(",", ":")).encode()
    return Outbound(
        delivery_id=delivery.pk,
        notification_id=notification.pk,
        endpoint_id=delivery.endpoint_id,
        url=delivery.endpoint.url,
        body=body,
        secrets=tuple(signing_secrets(delivery.endpoint, now=now)),
    )


class FailureKind(StrEnum):
    HTTP_STATUS = "http_status"
    TIMEOUT = "timeout"
    CONNECTION = "connection"


@dataclass(frozen=True)
class AttemptResult:
    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str
    error: str  # empty when the endpoint answered (its status code says how)
    failure: FailureKind | None  # None: a 2xx

    @property
    def succeeded(self) -> bool:
        return self.failure is None

    def summary(self) -> str:
        return f"HTTP {self.status_code}" if self.status_code is not None else self.error


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_capped(response: httpx.Response, limit: int) -> str:
    """At most `limit` characters of the body, reading no more than that many bytes of it."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit].decode("utf-8", errors="replace")[:limit]


def outbound_send(client: httpx.Client, outbound: Outbound, *, timeout_seconds: float) -> AttemptResult:
    """POSTs the signed notification once. Never raises: every failure is an AttemptResult."""
    attempted_at = timezone.now()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        NOTIFICATION_ID_HEADER: outbound.notification_id,
        # Signed as late as possible: the receiver checks `t` against its clock.
        SIGNATURE_HEADER: signature_header(body=outbound.body, secrets=outbound.secrets, timestamp=int(time.time())),
    }
    started = time.monotonic()

    def result(status: int | None, body: str, error: str, failure: FailureKind | None) -> AttemptResult:
        duration_ms = round((time.monotonic() - started) * 1000)
        return AttemptResult(attempted_at, duration_ms, status, body, _short(error, ERROR_LENGTH), failure)

    try:
        request = client.build_request("POST", outbound.url, content=outbound.body, headers=headers)
        response = client.send(request, stream=True, follow_redirects=False)
        try:
            body = _read_capped(response, DeliveryAttempt.RESPONSE_BODY_LIMIT)
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        return result(None, "", f"timed out after {timeout_seconds:g}s ({type(exc).__name__})", FailureKind.TIMEOUT)
    except Exception as exc:
        # Refused, reset, DNS, TLS, an unusable URL: the endpoint did not answer.
        return result(None, "", f"{type(exc).__name__}: {exc}", FailureKind.CONNECTION)
    ok = 200 <= response.status_code < 300
    return result(response.status_code, body, "", None if ok else FailureKind.HTTP_STATUS)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # a later attempt is scheduled
    FAILED = "failed"  # the window is over: given up
    LOST = "lost"  # the lease was no longer ours: nothing recorded


@dataclass(frozen=True)
class Sent:
    """One answer to record: what was sent, and how it went."""

    outbound: Outbound
    result: AttemptResult


@dataclass(frozen=True)
class Recorded:
    outcome: Outcome
    attempt_number: int = 0
    endpoint_disabled: bool = False  # this answer disabled its endpoint


_DELIVERY_FIELDS = [
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "delivered_at",
    "failed_at",
]


def attempts_record(
    sent: Sequence[Sent], *, lease_until: datetime, policy: JobPolicySpec, config: FulfillmentConfig
) -> list[Recorded]:
    """Logs the answers and moves their deliveries on, those our lease still holds; see the module
    docstring. One short transaction for all of them (whatever answers arrived while the previous
    ones were being recorded), so that recording keeps up with fast receivers. In `sent`'s order."""
    now = timezone.now()
    ids = [item.outbound.delivery_id for item in sent]
    with transaction.atomic():
        rows = {
            row.pk: row
            for row in Delivery.objects.select_for_update()
            .filter(pk__in=ids, status=Delivery.Status.PENDING, next_attempt_at=lease_until)
            .order_by("pk")
        }
        # Numbering continues across replays, which reset a delivery but keep its log.
        last_numbers = dict(
            DeliveryAttempt.objects.filter(delivery_id__in=list(rows))
            .values("delivery_id")
            .annotate(last=Max("number"))
            .values_list("delivery_id", "last")
        )
        recorded: list[Recorded] = []
        attempts: list[DeliveryAttempt] = []
        for item in sent:
            row = rows.get(item.outbound.delivery_id)
            if row is None:
                recorded.append(Recorded(Outcome.LOST))
                continue
            number = last_numbers.get(row.pk, 0) + 1
            attempts.append(_attempt(row, number, item.result))
            recorded.append(Recorded(_delivery_move_on(row, item.result, now, policy, config), number))
        DeliveryAttempt.objects.bulk_create(attempts)
        Delivery.objects.bulk_update([rows[i] for i in ids if i in rows], _DELIVERY_FIELDS)
        ours = [item for item, done in zip(sent, recorded, strict=True) if done.outcome != Outcome.LOST]
        disabled = _endpoints_update(ours, now=now, config=config)
    return [
        replace(done, endpoint_disabled=True) if item.outbound.delivery_id in disabled else done
        for item, done in zip(sent, recorded, strict=True)
    ]


def _attempt(row: Delivery, number: int, result: AttemptResult) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery=row,
        number=number,
        attempted_at=result.attempted_at,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        response_body=result.response_body,
        error=result.error,
    )


def _delivery_move_on(
    row: Delivery, result: AttemptResult, now: datetime, policy: JobPolicySpec, config: FulfillmentConfig
) -> Outcome:
    row.attempts += 1
    row.last_status_code = result.status_code
    if result.succeeded:
        row.status = Delivery.Status.DELIVERED
        row.delivered_at = now
        row.last_error = ""
        return Outcome.DELIVERED
    row.last_error = _short(result.summary(), ERROR_LENGTH)
    retry_at = now + timedelta(seconds=retry_delay_seconds(policy, row.attempts))
    if retry_at > row.created_at + timedelta(seconds=config.retry_window_seconds):
        row.status = Delivery.Status.FAILED
        row.failed_at = now
        return Outcome.FAILED
    row.next_attempt_at = retry_at
    return Outcome.RETRY


def _endpoints_update(recorded: list[Sent], *, now: datetime, config: FulfillmentConfig) -> set[int]:
    """Each endpoint's latest answer decides: a 2xx ends its run of failures, a failure starts one
    (or, once it has lasted FULFILLMENT_DISABLE_AFTER_SECONDS, disables the endpoint). The deliveries
    whose answer disabled their endpoint."""
    latest: dict[int, Sent] = {}
    for item in sorted(recorded, key=lambda i: i.result.attempted_at):
        latest[item.outbound.endpoint_id] = item
    recovered = [pk for pk, item in latest.items() if item.result.succeeded]
    failing = {pk: item for pk, item in latest.items() if not item.result.succeeded}
    if recovered:
        NotificationEndpoint.objects.filter(pk__in=recovered, failing_since__isnull=False).update(failing_since=None)
    if not failing:
        return set()
    NotificationEndpoint.objects.filter(pk__in=list(failing), failing_since__isnull=True).update(failing_since=now)
    cutoff = now - timedelta(seconds=config.disable_after_seconds)
    overdue = NotificationEndpoint.objects.filter(pk__in=list(failing), enabled=True, failing_since__lte=cutoff)
    disabled: set[int] = set()
    for endpoint_id, since in overdue.values_list("pk", "failing_since"):
        item = failing[endpoint_id]
        if since is not None and _endpoint_disable(endpoint_id, since=since, now=now, last=item.result):
            disabled.add(item.outbound.delivery_id)
    return disabled


def _endpoint_disable(endpoint_id: int, *, since: datetime, now: datetime, last: AttemptResult) -> bool:
    hours = (now - since).total_seconds() / 3600
    reason = _short(
        f"Every delivery attempt failed for {hours:.0f} h (since {since:%Y-%m-%d %H:%M} UTC); "
        f"the last one: {last.summary()}. Fix the receiver, then enable the endpoint again.",
        REASON_LENGTH,
    )
    disabled = NotificationEndpoint.objects.filter(pk=endpoint_id, enabled=True).update(
        enabled=False, disabled_at=now, disabled_reason=reason, updated_at=now
    )
    if disabled:
        log.warning("notification_endpoint_disabled", endpoint_id=endpoint_id, failing_since=since.isoformat())
    return bool(disabled)
