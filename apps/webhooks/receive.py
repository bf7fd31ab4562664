"""POST /api/v1/webhooks/stripe: verify, store in the ledger, commit, answer 200. Nothing else.

The flow follows Zulip and dj-stripe: verify the signature, dedupe on the event id through the unique
constraint, store the raw event, and only then process it (after the row committed). The ledger is
the queue: a drain in a worker claims `received` rows in batches (apps/webhooks/drain.py), and the
commit only arms a wake-up that a background thread publishes once per burst (apps/webhooks/
wakeup.py), so no broker round trip is on the request path. The view does no domain work and never
calls Stripe, so that Stripe gets its 200 in milliseconds. It
does route the event to its project and user (at most two indexed reads), so that a tenant sees its
events, failed ones included.

Answers: 200 stored (or a duplicate); 400 for what Stripe must not retry (a bad signature, a body
that is not an event, an event PostgreSQL can never store), with the reason and a warning, never an
error-level log; 503 only when the database could not store a storable event, so that Stripe retries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.common.json_limits import JsonRejected, json_loads_bounded, unstorable_text
from apps.common.middleware import request_id_of
from apps.webhooks import metrics
from apps.webhooks.models import CREATED_STAMPED_NOTE, ProcessorEvent
from apps.webhooks.routing import Route, route_event, routes_remembered
from apps.webhooks.signature import SignatureError, verify
from apps.webhooks.wakeup import ledger_wake

log = structlog.get_logger("billing.webhooks")

_KEPT_HEADERS = ("Stripe-Signature", "Content-Type", "User-Agent", "X-Request-ID")


class InvalidEvent(Exception):
    def __init__(self, detail: str, *, reason: str = "invalid_event") -> None:
        super().__init__(detail)
        self.reason = reason  # a short, fixed label for metrics


@dataclass(frozen=True)
class ParsedEvent:
    text: str  # the body as received, stored as is (what the signature covers)
    event: dict[str, Any]
    created: int  # Unix seconds: Stripe's `created`, or the time of receipt when it was missing
    created_stamped: bool


_UNSTORABLE = {
    "nul": "The event contains a NUL character (\\u0000), which cannot be stored.",
    "surrogate": "The event contains a lone UTF-16 surrogate escape, which cannot be stored.",
}


def _unstorable(value: Any) -> str | None:
    """Why PostgreSQL could never store this event, or None. Such an event must get a 400, not a
    503: Stripe would retry a 503 for three days."""
    found = unstorable_text(value)
    return _UNSTORABLE[found] if found else None


def _event_of(body: bytes, *, received: float) -> ParsedEvent:
    """The body as text and the parsed event; InvalidEvent says what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("The body is not JSON (not UTF-8).") from exc
    try:
        # Bounded: a deeply nested body would otherwise raise RecursionError (a 500), and NaN or
        # Infinity would parse here and then be refused by jsonb (a 503, retried for days).
        event = json_loads_bounded(text)
    except JsonRejected as exc:
        detail = f"The body is not JSON ({exc.__cause__})." if exc.__cause__ is not None else str(exc)
        raise InvalidEvent(detail) from exc
    if not isinstance(event, dict):
        raise InvalidEvent("The body is not a Stripe event object.")
    event_id, created, data = event.get("id"), event.get("created"), event.get("data")
    if not isinstance(event_id, str) or not event_id.startswith("evt_") or len(event_id) > 255:
        raise InvalidEvent("The event has no valid `id` (evt_...).")
    if not isinstance(event.get("type"), str) or not event["type"] or len(event["type"]) > 128:
        raise InvalidEvent("The event has no `type`.")
    stamped = created is None
    if stamped:
        # Real Stripe always sends `created`; hand-made test events often do not. API.md: stamp
        # such an event with the time of receipt (whole seconds, like Stripe's) and say so on the row.
        created = int(received)
    elif not isinstance(created, int) or isinstance(created, bool) or not 0 <= created < 2**35:
        raise InvalidEvent("The event has no valid `created` timestamp.")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise InvalidEvent("The event has no `data.object`.")
    reason = _unstorable(event)
    if reason is not None:
        raise InvalidEvent(reason, reason="unstorable")
    return ParsedEvent(text=text, event=event, created=created, created_stamped=stamped)


def _route(event: dict[str, Any]) -> Route | None:
    """The event's project and user, read at receipt; None when unknown or when the read fails.

    A failed read must not turn a storable event into a 5xx: the row is stored unrouted and
    processing routes it. (The view runs in autocommit, so a failed SELECT leaves no broken
    transaction behind; if the database is really down, the insert fails next and answers 503.)
    """
    try:
        with routes_remembered():
            return route_event(event["type"], event["data"]["object"])
    except DatabaseError:
        log.warning("webhook_route_at_receipt_failed", event_id=event["id"], type=event["type"], exc_info=True)
        return None


def _reject(reason: str, detail: str, started: float) -> JsonResponse:
    metrics.webhooks_received.labels(outcome="rejected", reason=reason).inc()
    metrics.webhook_ack_seconds.observe(time.perf_counter() - started)
    log.warning("webhook_rejected", reason=reason, detail=detail)
    return JsonResponse({"detail": detail}, status=400)


# Not atomic: the ledger row must commit on its own, before a drain is woken, and a failed insert
# (a duplicate) must not doom a request-wide transaction.
@csrf_exempt  # Stripe cannot send a CSRF token; the signature is the authentication.
@require_POST
@transaction.non_atomic_requests
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    started = time.perf_counter()
    received = time.time()
    body = request.body
    try:
        verify(
            request.headers.get("Stripe-Signature"),
            body,
            secrets=settings.STRIPE_WEBHOOK_SECRETS,
            tolerance=int(getattr(settings, "STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300)),
            now=received,
        )
        parsed = _event_of(body, received=received)
    except SignatureError as exc:
        return _reject(exc.reason, exc.detail, started)
    except InvalidEvent as exc:
        return _reject(exc.reason, str(exc), started)

    event = parsed.event
    event_id, event_type = event["id"], event["type"]
    # Header values are the client's; a NUL in one would make the row unstorable.
    headers = {name: request.headers[name].replace("\x00", "") for name in _KEPT_HEADERS if name in request.headers}
    headers["request_id"] = request_id_of(request)
    route = _route(event)
    duplicate = False
    try:
        # A savepoint (or a transaction in autocommit): a duplicate's IntegrityError rolls back only
        # this insert. The wake-up is armed after the row committed, so the drain always finds it.
        with transaction.atomic():
            ProcessorEvent.objects.create(
                stripe_event_id=event_id,
                type=event_type,
                api_version=str(event.get("api_version") or "")[:64],
                livemode=bool(event.get("livemode", False)),
                created=datetime.fromtimestamp(parsed.created, tz=UTC),
                created_stamped=parsed.created_stamped,
                note=CREATED_STAMPED_NOTE if parsed.created_stamped else "",
                payload=event,
                raw_body=parsed.text,
                headers=headers,
                project=route.project if route else None,
                user_id=route.user_id if route else "",
            )
            # robust: nothing may turn a stored event into a 5xx; a row whose wake-up is lost is
            # taken by beat's periodic drain (and, failing that, the sweeper).
            transaction.on_commit(ledger_wake, robust=True)
    except IntegrityError:
        # The unique event id: Stripe redelivered (or delivered twice at once). Anything else that
        # violates a constraint is a storage failure, answered 503 so that Stripe retries.
        duplicate = _already_stored(event_id)
        if not duplicate:
            return _unavailable(event_id, event_type, started)
    except DataError as exc:
        # The database refuses this value itself (_event_of screens the known cases): retrying
        # cannot help, so the answer is a 400 with the reason, not a 503 retried for three days.
        return _reject("unstorable", f"The event cannot be stored: {str(exc).splitlines()[0]}", started)
    except DatabaseError:
        return _unavailable(event_id, event_type, started)

    outcome = "duplicate" if duplicate else "accepted"
    metrics.webhooks_received.labels(outcome=outcome, reason="").inc()
    metrics.webhook_ack_seconds.observe(time.perf_counter() - started)
    if event.get("api_version") and event["api_version"] != settings.STRIPE_API_VERSION:
        # Zulip checks the version: a payload shaped by another version may not parse as we expect.
        # Stored and answered 200 all the same (Stripe would only redeliver the same payload); the
        # processing marks it failed instead of guessing (processing.api_version_mismatch).
        log.warning("webhook_api_version_mismatch", event_id=event_id, api_version=event["api_version"])
    log.info(
        "webhook_received",
        event_id=event_id,
        type=event_type,
        duplicate=duplicate,
        project_id=route.project.pk if route else None,
        created_stamped=parsed.created_stamped,
    )
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
