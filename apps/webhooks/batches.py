"""Processing a claimed batch of ledger rows: every Stripe read first, then one transaction of writes.

1. Fetch, with no transaction open: each row is routed if its receipt could not route it, refused if
   it came in another API version, and its handler's fetch and mirror steps run (the Stripe reads,
   apps/webhooks/registry.py). A row whose fetch raises is recorded failed and handed to
   process_event's retries; the rest of the batch goes on. What every fetch step reads (the last
   applied event of each subscription) is read once for the batch (handlers/prefetch.py).
2. Apply, in one transaction: the batch's claims are locked (a row the sweeper or a replay took
   over meanwhile is left to it); then, in ledger order (the order the events arrived, which is the
   order one-at-a-time processing would have taken, so a batch ends exactly as that would have: the
   handlers make any order of one object's events end in its newest state, and an old event
   delivered late is still recorded as stale), each row's apply step runs in a savepoint of its
   own, so a row whose apply raises rolls back alone. The rows of the subscriptions the batch
   writes are locked at once as the transaction starts, in primary key order, and kept as it writes
   them (read again after a savepoint rolls back). Handlers ask for entitlement recomputes
   (projection.entitlements_recompute_later); each (project, user) is recomputed once, at the end,
   and the rows' outcomes are written in one statement, all in the same transaction, so the
   projection and the statuses commit with the writes they reflect.
3. After the commit: the metrics and log lines; rows whose apply found a same-second tie under its
   lock (FetchAgain: an event of the same second was applied meanwhile, perhaps earlier in this
   batch) go through the single-event path, which asks Stripe outside any transaction and applies
   in a transaction of their own; failed rows are handed to process_event's retries.

If the transaction as a whole fails (the recompute, or the commit), nothing of the batch committed:
every row is recorded failed and retried one by one.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from django.db import transaction

from apps.entitlements.projection import recomputes_batched
from apps.webhooks import metrics
from apps.webhooks.handlers.prefetch import batch_event_rolled_back, batch_reads, batch_writes
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.processing import (
    FINISHED_FIELDS,
    ApiVersionMismatch,
    ClaimLost,
    api_version_mismatch,
    fetch_and_apply,
    finished_fields,
    prepared,
    processed_record,
    record_failure,
    route_unrouted,
    stripe_event_of,
)
from apps.webhooks.registry import FetchAgain, Outcome, StripeEvent
from apps.webhooks.routing import routes_memoized
from apps.webhooks.tasks import process_event

log = structlog.get_logger("billing.webhooks")

Status = ProcessorEvent.Status

# The first retry of an event that failed in a batch: process_event's own backoff takes over from there.
RETRY_AFTER_SECONDS = 5


@dataclass
class BatchResult:
    size: int
    done: int = 0  # processed or ignored, committed
    failed: int = 0
    refetched: int = 0  # went through the single-event path after a same-second tie
    lost: int = 0  # another worker (the sweeper's, a replay) took the row over


@dataclass
class _Ready:
    row: ProcessorEvent
    apply: Callable[[], Outcome]
    seconds: float  # the fetch step's time, counted in the event's processing time


@dataclass
class _Applied:
    done: list[tuple[_Ready, Outcome, float]] = field(default_factory=list)
    again: list[ProcessorEvent] = field(default_factory=list)
    failed: list[tuple[ProcessorEvent, str]] = field(default_factory=list)
    lost: int = 0


def batch_process(rows: list[ProcessorEvent], *, claimed_at: datetime) -> BatchResult:
    """Processes rows this worker claimed at `claimed_at` (claims.ledger_claim)."""
    result = BatchResult(size=len(rows))
    ready: list[_Ready] = []
    events = _events(rows)
    with routes_memoized(), batch_reads(events.values()):
        for row in sorted(rows, key=lambda r: r.pk):
            prepared_row = _prepare(row, claimed_at=claimed_at, result=result)
            if prepared_row is not None:
                ready.append(prepared_row)
    if not ready:
        return result
    try:
        with routes_memoized():
            applied = _apply_all(ready, events, claimed_at=claimed_at)
    except Exception:
        # Nothing of the batch committed: each row is retried on its own.
        error = traceback.format_exc()
        log.exception("webhook_batch_failed", size=len(ready))
        for item in ready:
            _failed(item.row, claimed_at=claimed_at, error=error, result=result)
        return result
    for item, outcome, seconds in applied.done:
        processed_record(item.row, outcome, seconds=item.seconds + seconds)
    result.done += len(applied.done)
    result.lost += applied.lost
    for row, error in applied.failed:
        _failed(row, claimed_at=claimed_at, error=error, result=result)
    for row in applied.again:
        _single(row, claimed_at=claimed_at, result=result)
    return result


def _events(rows: list[ProcessorEvent]) -> dict[int, StripeEvent]:
    """The rows' events by ledger id, for the batch's shared reads; a row whose payload makes no event
    is left out here, and its own fetch step fails it."""
    events: dict[int, StripeEvent] = {}
    for row in rows:
        try:
            events[row.pk] = stripe_event_of(row)
        except (AttributeError, TypeError):  # `data` not an object: a hand-made event
            continue
    return events


def _prepare(row: ProcessorEvent, *, claimed_at: datetime, result: BatchResult) -> _Ready | None:
    """The row's apply step, its Stripe reads done; None when it failed (and was recorded)."""
    started = time.perf_counter()
    try:
        route_unrouted(row)
        mismatch = api_version_mismatch(row)
        if mismatch is not None:
            raise ApiVersionMismatch(mismatch)
        apply = prepared(row)
    except ApiVersionMismatch as exc:
        # Not retried: only the endpoint's version (then a replay) or a deploy can fix it.
        record_failure(row, claimed_at=claimed_at, error=str(exc))
        metrics.api_version_mismatches.labels(api_version=row.api_version).inc()
        result.failed += 1
        return None
    except Exception:
        _failed(row, claimed_at=claimed_at, error=traceback.format_exc(), result=result)
        return None
    return _Ready(row, apply, time.perf_counter() - started)


def _apply_all(ready: list[_Ready], events: dict[int, StripeEvent], *, claimed_at: datetime) -> _Applied:
    applied = _Applied()
    with transaction.atomic(), recomputes_batched():
        # Our claims, locked until the commit: the sweeper or a replay that wants one of these rows
        # waits for the batch instead of racing it, so the outcomes can be written all at once.
        ours = set(
            ProcessorEvent.objects.select_for_update()
            .filter(pk__in=[item.row.pk for item in ready], status=Status.PROCESSING, claimed_at=claimed_at)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        with batch_writes(events[pk] for pk in sorted(ours) if pk in events):
            _apply_each(ready, ours, applied)
        finished = [item.row for item, _, _ in applied.done]
        if finished:
            # One statement for the batch's outcomes, committed with the writes they describe.
            ProcessorEvent.objects.bulk_update(finished, FINISHED_FIELDS)
    return applied


def _apply_each(ready: list[_Ready], ours: set[int], applied: _Applied) -> None:
    """Each row's apply step in a savepoint of its own, in ledger order."""
    for item in ready:
        if item.row.pk not in ours:
            log.warning("webhook_claim_lost", ledger_id=item.row.pk, event_id=item.row.stripe_event_id)
            applied.lost += 1
            continue
        started = time.perf_counter()
        # A savepoint per event: a failing event rolls back alone. Not released on success (one
        # round trip fewer per event): PostgreSQL releases them all at the commit.
        savepoint = transaction.savepoint()
        try:
            outcome = item.apply()
        except FetchAgain as exc:
            _rollback_to(savepoint)
            log.info("webhook_fetch_again", event_id=item.row.stripe_event_id, attempt=1, reason=str(exc))
            applied.again.append(item.row)
            continue
        except Exception:
            error = traceback.format_exc()
            _rollback_to(savepoint)
            applied.failed.append((item.row, error))
            continue
        for name, value in finished_fields(item.row, outcome).items():
            setattr(item.row, name, value)
        applied.done.append((item, outcome, time.perf_counter() - started))


def _rollback_to(savepoint: str) -> None:
    # As an atomic block does: a handler's atomic(savepoint=False) that raised marked the whole
    # transaction for rollback; rolling back to our savepoint makes it usable again.
    transaction.set_rollback(False)
    transaction.savepoint_rollback(savepoint)
    batch_event_rolled_back()


def _single(row: ProcessorEvent, *, claimed_at: datetime, result: BatchResult) -> None:
    """A row whose apply needs Stripe's current object: fetched outside, applied in its own transaction."""
    started = time.perf_counter()
    result.refetched += 1
    try:
        outcome = fetch_and_apply(row, claimed_at=claimed_at)
    except ClaimLost:
        log.warning("webhook_claim_lost", ledger_id=row.pk, event_id=row.stripe_event_id)
        result.lost += 1
        return
    except Exception:
        _failed(row, claimed_at=claimed_at, error=traceback.format_exc(), result=result)
        return
    processed_record(row, outcome, seconds=time.perf_counter() - started)
    result.done += 1


def _failed(row: ProcessorEvent, *, claimed_at: datetime, error: str, result: BatchResult) -> None:
    """Records the failure (outside any transaction, so it stays) and schedules process_event's retry."""
    result.failed += 1
    record_failure(row, claimed_at=claimed_at, error=error)
    try:
        process_event.apply_async((row.pk,), countdown=RETRY_AFTER_SECONDS)
    except Exception:
        # The broker is away (or, in eager mode, the retries ran inline and failed too): the row
        # stays failed, and the sweeper retries it after its backoff.
        log.warning("webhook_retry_not_scheduled", event_id=row.stripe_event_id, exc_info=True)
