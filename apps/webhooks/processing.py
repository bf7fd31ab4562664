"""Processing one ledger event: claim it, check its API version, run its handler, record the result.

The handler runs in steps (apps/webhooks/registry.py): its fetch step reads Stripe before any
transaction is open, so a Stripe stall holds no row lock and no open transaction; then its apply
step's writes and the row's final status commit in one transaction, so an event is marked processed
only once its effects are durable. A failure rolls those writes back, and the error is recorded on
the row *outside* that transaction (dj-stripe's habit) so that it survives the rollback.

An event rendered in another API version than the one we pin (settings.STRIPE_API_VERSION) is not
processed on a guess about its shape: it is marked failed with a clear error (and counted), and an
operator's replay (force) processes it once the endpoint's version is fixed, as does any retry once
the pinned version matches.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.webhooks import metrics, registry
from apps.webhooks.models import CREATED_STAMPED_NOTE, ProcessorEvent
from apps.webhooks.registry import FetchAgain, Outcome, StripeEvent
from apps.webhooks.routing import route_event

log = structlog.get_logger("billing.webhooks")

Status = ProcessorEvent.Status
MAX_ERROR_CHARS = 8000
# How many times an event is fetched again when its apply step finds that what the fetch read has
# changed meanwhile (FetchAgain). Each round needs another worker to apply a same-second event
# in between, so a second round is already rare; past the bound the event fails and is retried.
MAX_FETCHES = 3


def processing_stuck_after() -> timedelta:
    """After this long a `processing` claim belongs to a dead worker (longer than the task time limit)."""
    return timedelta(seconds=int(getattr(settings, "WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS", 300)))


class ClaimLost(Exception):
    """Another worker (or a replay) took the row over while this one ran: let it finish instead."""


def stripe_event_of(row: ProcessorEvent) -> StripeEvent:
    payload: dict[str, Any] = row.payload
    data: dict[str, Any] = payload.get("data") or {}
    return StripeEvent(
        ledger_id=row.pk,
        id=row.stripe_event_id,
        type=row.type,
        # The row's, not the payload's: the same value, except for an event that came without
        # `created`, which the receipt stamped with its time (ProcessorEvent.created_stamped).
        created=int(row.created.timestamp()),
        livemode=row.livemode,
        api_version=row.api_version or None,
        data_object=data.get("object") or {},
        previous_attributes=data.get("previous_attributes"),
    )


def prepared(row: ProcessorEvent, *, dry_run: bool = False) -> Callable[[], Outcome]:
    """Runs the handler's fetch (and mirror) steps, outside any transaction; returns its apply step.

    Never called inside a transaction of ours: this is where Stripe is read.
    """
    registered = registry.handler_for(row.type)
    if registered is None:
        return lambda: Outcome("ignored", note=f"no handler for {row.type}")
    event = stripe_event_of(row)
    if not isinstance(registered, registry.Steps):
        return partial(registered, event)
    fetched = registered.fetch(event)
    if registered.mirror is not None and not dry_run:
        registered.mirror(event, fetched)
    return partial(registered.apply, event, fetched)


class ApiVersionMismatch(Exception):
    """The event was rendered in another API version than ours; the message is the row's last_error."""


def api_version_mismatch(row: ProcessorEvent) -> str | None:
    """Why the event must not be processed as it is: rendered in another API version than ours.

    Events without a version (hand-made test events) are processed as they come.
    """
    pinned = settings.STRIPE_API_VERSION
    if not row.api_version or row.api_version == pinned:
        return None
    return (
        f"event api_version {row.api_version} is not the pinned {pinned}; "
        "fix the endpoint's version in Stripe, then replay"
    )


def route_unrouted(row: ProcessorEvent) -> None:
    """Routes a row the receipt could not route (its read failed, or the customer was not known yet).

    Written at once, outside the handler's transaction: a failing event keeps its project, so the
    tenant's ops key can see and replay it.
    """
    if row.project_id is not None:
        return
    payload: dict[str, Any] = row.payload
    obj = (payload.get("data") or {}).get("object")
    route = route_event(row.type, obj) if isinstance(obj, dict) else None
    if route is None:
        return
    ProcessorEvent.objects.filter(pk=row.pk, project__isnull=True).update(project=route.project, user_id=route.user_id)
    row.project_id, row.user_id = route.project.pk, route.user_id


def _note(row: ProcessorEvent, outcome: Outcome) -> str:
    notes = [CREATED_STAMPED_NOTE if row.created_stamped else ""]
    if api_version_mismatch(row) is not None:
        # Only a replay gets here (force): say that the payload was read as if it were ours.
        notes.append(f"api_version {row.api_version} (pinned {settings.STRIPE_API_VERSION}): processed by a replay")
    return "; ".join(filter(None, [*notes, outcome.note]))


def _claim(ledger_id: int, *, force: bool, now: datetime) -> bool:
    rows = ProcessorEvent.objects.filter(pk=ledger_id)
    if not force:
        # Healthchecks' claim: one UPDATE decides which worker owns the row; 0 rows means it is
        # processed, or a live worker holds it. A stale `processing` claim is a dead worker's.
        rows = rows.filter(
            Q(status__in=[Status.RECEIVED, Status.FAILED])
            | Q(status=Status.PROCESSING, claimed_at__lt=now - processing_stuck_after())
        )
    return rows.update(status=Status.PROCESSING, attempts=F("attempts") + 1, claimed_at=now) == 1


def event_process(*, ledger_id: int, force: bool = False, dry_run: bool = False) -> Outcome | None:
    """Processes one ledger row; None when another worker owns it or it is already done.

    force (replays): claim the row whatever its status. dry_run: run the handler and roll everything
    back, the row included; the Outcome says what would change.
    """
    if dry_run:
        return _dry_run(ledger_id)
    now = timezone.now()
    if not _claim(ledger_id, force=force, now=now):
        return None
    started = time.perf_counter()
    row = ProcessorEvent.objects.get(pk=ledger_id)
    try:
        route_unrouted(row)
        mismatch = api_version_mismatch(row)
        if mismatch is not None and not force:
            raise ApiVersionMismatch(mismatch)
        outcome = fetch_and_apply(row, claimed_at=now)
    except ClaimLost:
        log.warning("webhook_claim_lost", ledger_id=ledger_id, event_id=row.stripe_event_id)
        return None
    except ApiVersionMismatch as exc:
        # Not raised on: a retry cannot fix it, only the endpoint's version (then a replay) or a
        # deploy that pins this version (then the sweeper's retry) can.
        record_failure(row, claimed_at=now, error=str(exc))
        metrics.api_version_mismatches.labels(api_version=row.api_version).inc()
        return None
    except Exception:
        record_failure(row, claimed_at=now, error=traceback.format_exc())
        raise
    processed_record(row, outcome, seconds=time.perf_counter() - started)
    return outcome


def fetch_and_apply(row: ProcessorEvent, *, claimed_at: datetime) -> Outcome:
    for attempt in range(1, MAX_FETCHES + 1):
        # Before the transaction: the handler's Stripe reads (and dj-stripe's mirror).
        apply = prepared(row)
        try:
            with transaction.atomic():
                outcome = apply()
                finish(row, outcome, claimed_at=claimed_at)
        except FetchAgain as exc:
            log.info("webhook_fetch_again", event_id=row.stripe_event_id, attempt=attempt, reason=str(exc))
            if attempt == MAX_FETCHES:
                raise
            continue
        return outcome
    raise AssertionError("unreachable")  # the loop returns or raises


def finish(row: ProcessorEvent, outcome: Outcome, *, claimed_at: datetime) -> None:
    """Records the outcome on the row, inside the transaction that holds the handler's writes.

    Only while our claim still stands: if the sweeper or a replay took the row over, ClaimLost rolls
    our writes back and theirs count (handlers are idempotent, but once is cleaner).
    """
    finished = ProcessorEvent.objects.filter(pk=row.pk, status=Status.PROCESSING, claimed_at=claimed_at).update(
        **finished_fields(row, outcome)
    )
    if finished != 1:
        raise ClaimLost(row.pk)


FINISHED_FIELDS = ("status", "processed_at", "project_id", "note", "changes", "last_error")


def finished_fields(row: ProcessorEvent, outcome: Outcome) -> dict[str, Any]:
    """What a row records once its outcome commits (FINISHED_FIELDS)."""
    return {
        "status": outcome.status,
        "processed_at": timezone.now(),
        # The handler's routing wins; an event it leaves unrouted keeps the receipt's.
        "project_id": outcome.project_id if outcome.project_id is not None else row.project_id,
        "note": _note(row, outcome),
        "changes": list(outcome.changes),
        "last_error": "",
    }


def processed_record(row: ProcessorEvent, outcome: Outcome, *, seconds: float) -> None:
    """The metrics and the log line of an event whose outcome committed."""
    metrics.events_processed.labels(type=row.type, status=outcome.status).inc()
    metrics.processing_seconds.observe(seconds)
    log.info(
        "webhook_processed",
        event_id=row.stripe_event_id,
        type=row.type,
        status=outcome.status,
        project_id=outcome.project_id,
        attempts=row.attempts,
    )


def record_failure(row: ProcessorEvent, *, claimed_at: datetime, error: str) -> None:
    # Outside the rolled-back transaction, so the traceback survives. The tail holds the cause.
    ProcessorEvent.objects.filter(pk=row.pk, claimed_at=claimed_at).update(
        status=Status.FAILED, last_error=error[-MAX_ERROR_CHARS:]
    )
    metrics.events_processed.labels(type=row.type, status=Status.FAILED).inc()
    log.warning("webhook_failed", event_id=row.stripe_event_id, type=row.type, attempts=row.attempts, error=error)


def _dry_run(ledger_id: int) -> Outcome:
    row = ProcessorEvent.objects.get(pk=ledger_id)
    # The Stripe reads first, outside the transaction; the mirror is skipped, since it would stay.
    apply = prepared(row, dry_run=True)
    with transaction.atomic():
        try:
            return apply()
        finally:
            # Whatever the handler wrote (or half-wrote before raising) is undone.
            transaction.set_rollback(True)
