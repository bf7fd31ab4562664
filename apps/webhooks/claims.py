"""The ledger as a queue: claiming `received` rows for a batch, and how long the queue is.

A claim moves rows from `received` to `processing` (attempts + 1, claimed_at = the batch's time) and
commits at once, before any handler runs: the batch then reads Stripe with no transaction open. A
worker that dies after its claim leaves `processing` rows with an old claimed_at, which the sweeper
hands to process_event once the claim is stale (apps/webhooks/sweeper.py), as for a single event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Count, F, Min

from apps.webhooks.models import ProcessorEvent

Status = ProcessorEvent.Status

# One statement: the oldest `received` rows no other transaction holds, moved to `processing`.
# SKIP LOCKED: two drains claiming at once take disjoint rows instead of waiting on each other.
# The (status, received_at) index serves the inner select.
_CLAIM_SQL = """
UPDATE processor_events SET status = %s, attempts = attempts + 1, claimed_at = %s
WHERE id IN (
    SELECT id FROM processor_events WHERE status = %s
    ORDER BY received_at, id LIMIT %s FOR UPDATE SKIP LOCKED
)
RETURNING *
"""


def ledger_claim(*, limit: int, now: datetime) -> list[ProcessorEvent]:
    """Claims up to `limit` received rows for this worker, oldest first; [] when none is waiting."""
    if connection.vendor == "postgresql":
        return list(ProcessorEvent.objects.raw(_CLAIM_SQL, [Status.PROCESSING, now, Status.RECEIVED, limit]))
    # SQLite has one writer at a time and no row locks: an ordered read, then an UPDATE that only
    # takes the rows still `received`, and the rows this claim (its claimed_at) now holds.
    ids = list(
        ProcessorEvent.objects.filter(status=Status.RECEIVED)
        .order_by("received_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return []
    ProcessorEvent.objects.filter(pk__in=ids, status=Status.RECEIVED).update(
        status=Status.PROCESSING, attempts=F("attempts") + 1, claimed_at=now
    )
    return list(ProcessorEvent.objects.filter(pk__in=ids, status=Status.PROCESSING, claimed_at=now))


def ledger_waiting() -> bool:
    """Whether a `received` row is waiting (one index probe)."""
    return ProcessorEvent.objects.filter(status=Status.RECEIVED).exists()


@dataclass(frozen=True)
class QueueState:
    depth: int  # rows in `received`
    oldest: datetime | None  # received_at of the oldest of them


def ledger_queue_state() -> QueueState:
    waiting = ProcessorEvent.objects.filter(status=Status.RECEIVED)
    # Count and oldest in one statement; both come from the (status, received_at) index.
    state = waiting.aggregate(depth=Count("id"), oldest=Min("received_at"))
    return QueueState(depth=int(state["depth"] or 0), oldest=state["oldest"])
