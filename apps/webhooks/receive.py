"""POST /api/v1/webhooks/stripe: verify, store in the ledger, enqueue, answer 200. Nothing else.

The flow follows Zulip and dj-stripe: verify the signature, dedupe on the event id through the unique
constraint, store the raw event, and only then process it (in a task, after the row committed). The
view does no domain work and never calls Stripe, so that Stripe gets its 200 in milliseconds.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.common.middleware import request_id_of
from apps.webhooks import metrics
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.signature import SignatureError, verify
from apps.webhooks.tasks import process_event

log = structlog.get_logger("billing.webhooks")

_KEPT_HEADERS = ("Stripe-Signature", "Content-Type", "User-Agent", "X-Request-ID")


class InvalidEvent(Exception):
    pass


def _event_of(body: bytes) -> tuple[str, dict[str, Any]]:
    """The body as text (stored as received) and the parsed event; InvalidEvent says what is wrong."""
    try:
        text = body.decode("utf-8")
        event = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent("The body is not JSON.") from exc
    if not isinstance(event, dict):
        raise InvalidEvent("The body is not a Stripe event object.")
    event_id, created, data = event.get("id"), event.get("created"), event.get("data")
    if not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > 255:
        raise InvalidEvent("The event has no valid `id` (evt_...).")
    if not isinstance(event.get("type"), str) or not event["type"] or len(event["type"]) > 128:
        raise InvalidEvent("The event has no `type`.")
    if not isinstance(created, int) or isinstance(created, bool) or not 0 <= created < 2**35:
        raise InvalidEvent("The event has no valid `created` timestamp.")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise InvalidEvent("The event has no `data.object`.")
    return text, event


def _reject(reason: str, detail: str, started: float) -> JsonResponse:
    metrics.webhooks_received.labels(outcome="rejected", reason=reason).inc()
    metrics.webhook_ack_seconds.observe(time.perf_counter() - started)
    log.warning("webhook_rejected", reason=reason, detail=detail)
    return JsonResponse({"detail": detail}, status=400)


# Not atomic: the ledger row must commit on its own, before processing is enqueued, and a failed
# insert (a duplicate) must not doom a request-wide transaction. ATOMIC_REQUESTS would also defer
# the on_commit enqueue until after the response, mixing two concerns.
@csrf_exempt  # Stripe cannot send a CSRF token; the signature is the authentication.
@require_POST
@transaction.non_atomic_requests
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    started = time.perf_counter()
    body = request.body
    try:
        verify(
            request.headers.get("Stripe-Signature"),
            body,
            secrets=settings.STRIPE_WEBHOOK_SECRETS,
            tolerance=int(getattr(settings, "STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300)),
            now=time.time(),
        )
        text, event = _event_of(body)
    except SignatureError as exc:
        return _reject(exc.reason, exc.detail, started)
    except InvalidEvent as exc:
        return _reject("invalid_event", str(exc), started)

    event_id, event_type = event["id"], event["type"]
    headers = {name: request.headers[name] for name in _KEPT_HEADERS if name in request.headers}
    headers["request_id"] = request_id_of(request)
    duplicate = False
    try:
        # A savepoint (or a transaction in autocommit): a duplicate's IntegrityError rolls back only
        # this insert. The enqueue runs after the row committed, so the task always finds it.
        with transaction.atomic():
            row = ProcessorEvent.objects.create(
                stripe_event_id=event_id,
                type=event_type,
                api_version=str(event.get("api_version") or "")[:64],
                livemode=bool(event.get("livemode", False)),
                created=datetime.fromtimestamp(event["created"], tz=UTC),
                payload=event,
                raw_body=text,
                headers=headers,
            )
            # robust: a broker that is down must not turn a stored event into a 5xx; the sweeper
            # re-enqueues rows left in `received`.
            transaction.on_commit(lambda: process_event.delay(row.pk), robust=True)
    except IntegrityError:
        # The unique event id: Stripe redelivered (or delivered twice at once). Anything else that
        # violates a constraint is a storage failure, answered 503 so that Stripe retries.
        duplicate = _already_stored(event_id)
        if not duplicate:
            return _unavailable(event_id, event_type, started)
    except DatabaseError:
        return _unavailable(event_id, event_type, started)

    outcome = "duplicate" if duplicate else "accepted"
    metrics.webhooks_received.labels(outcome=outcome, reason="").inc()
    metrics.webhook_ack_seconds.observe(time.perf_counter() - started)
    if event.get("api_version") and event["api_version"] != settings.STRIPE_API_VERSION:
        # Zulip checks the version: a payload shaped by another version may not parse as we expect.
        log.warning("webhook_api_version_mismatch", event_id=event_id, api_version=event["api_version"])
    log.info("webhook_received", event_id=event_id, type=event_type, duplicate=duplicate)
    return JsonResponse({"received": True, "duplicate": duplicate})


def _already_stored(event_id: str) -> bool:
    try:
        return ProcessorEvent.objects.filter(stripe_event_id=event_id).exists()
    except DatabaseError:
        return False


def _unavailable(event_id: str, event_type: str, started: float) -> JsonResponse:
    metrics.webhooks_received.labels(outcome="unavailable", reason="storage").inc()
    metrics.webhook_ack_seconds.observe(time.perf_counter() - started)
    log.exception("webhook_store_failed", event_id=event_id, type=event_type)
    return JsonResponse({"detail": "The event could not be stored; retry later."}, status=503)
