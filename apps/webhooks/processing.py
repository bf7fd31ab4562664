"""Processing one ledger event: claim it, run its handler, record the result.

The handler's writes and the row's final status commit in one transaction, so an event is marked
processed only once its effects are durable. A failure rolls those writes back, and the error is
recorded on the row *outside* that transaction (dj-stripe's habit) so that it survives the rollback.
"""

from __future__ import annotations

import time
import traceback
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.webhooks import metrics, registry
from apps.webhooks.models import CREATED_STAMPED_NOTE, ProcessorEvent
from apps.webhooks.registry import Outcome, StripeEvent
from apps.webhooks.routing import route_event

log = structlog.get_logger("billing.webhooks")

Status = ProcessorEvent.Status
MAX_ERROR_CHARS = 8000


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


def _run_handler(row: ProcessorEvent) -> Outcome:
    handler = registry.handler_for(row.type)
    if handler is None:
        return Outcome("ignored", note=f"no handler for {row.type}")
    return handler(stripe_event_of(row))


def _route_unrouted(row: ProcessorEvent) -> None:
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
    if row.created_stamped:
        return "; ".join(filter(None, [CREATED_STAMPED_NOTE, outcome.note]))
    return outcome.note


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
        _route_unrouted(row)
        with transaction.atomic():
            outcome = _run_handler(row)
            # Only while our claim still stands: if the sweeper or a replay took the row over, our
            # writes roll back and theirs count (handlers are idempotent, but once is cleaner).
            finished = ProcessorEvent.objects.filter(pk=ledger_id, status=Status.PROCESSING, claimed_at=now).update(
                status=outcome.status,
                processed_at=timezone.now(),
                # The handler's routing wins; an event it leaves unrouted keeps the receipt's.
                project_id=outcome.project_id if outcome.project_id is not None else row.project_id,
                note=_note(row, outcome),
                changes=list(outcome.changes),
                last_error="",
            )
            if finished != 1:
                raise ClaimLost(ledger_id)
    except ClaimLost:
        log.warning("webhook_claim_lost", ledger_id=ledger_id, event_id=row.stripe_event_id)
        return None
    except Exception:
        _record_failure(row, claimed_at=now, error=traceback.format_exc())
        raise
    metrics.events_processed.labels(type=row.type, status=outcome.status).inc()
    metrics.processing_seconds.observe(time.perf_counter() - started)
    log.info(
        "webhook_processed",
        event_id=row.stripe_event_id,
        type=row.type,
        status=outcome.status,
        project_id=outcome.project_id,
        attempts=row.attempts,
    )
    return outcome


def _record_failure(row: ProcessorEvent, *, claimed_at: datetime, error: str) -> None:
    # Outside the rolled-back transaction, so the traceback survives. The tail holds the cause.
    ProcessorEvent.objects.filter(pk=row.pk, claimed_at=claimed_at).update(
        status=Status.FAILED, last_error=error[-MAX_ERROR_CHARS:]
    )
    metrics.events_processed.labels(type=row.type, status=Status.FAILED).inc()
    log.warning("webhook_failed", event_id=row.stripe_event_id, type=row.type, attempts=row.attempts, error=error)


def _dry_run(ledger_id: int) -> Outcome:
    row = ProcessorEvent.objects.get(pk=ledger_id)
    with transaction.atomic():
        try:
            return _run_handler(row)
        finally:
            # Whatever the handler wrote (or half-wrote before raising) is undone.
            transaction.set_rollback(True)
