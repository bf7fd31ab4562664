"""Replays: run ledger events through their handlers again, on an operator's request.

A replay is synchronous (an operator waits for its answer) and capped at MAX_EVENTS; a wider window
is refused rather than silently cut. Replaying events already applied must change nothing: that is
the handlers' idempotency, which a dry run lets an operator check first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.entitlements.audit import audit_record
from apps.webhooks.models import ProcessorEvent, ReplayRun
from apps.webhooks.processing import event_process

log = structlog.get_logger("billing.webhooks")

MAX_EVENTS = 10_000


class ReplayTooLarge(Exception):
    pass


@dataclass(frozen=True)
class ReplayResult:
    event_id: str
    type: str
    status: str  # processed, ignored, failed, skipped (another worker held the row)
    changes: list[str]
    note: str
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "status": self.status,
            "changes": self.changes,
            "note": self.note,
            "error": self.error,
        }


def replay_events_select(
    *,
    project_id: int | None,
    event_ids: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Sequence[str] | None = None,
) -> QuerySet[ProcessorEvent]:
    rows = ProcessorEvent.objects.all()
    if project_id is not None:
        # A tenant's ops key reaches only the events routed to its project.
        rows = rows.filter(project_id=project_id)
    if event_ids:
        rows = rows.filter(stripe_event_id__in=list(event_ids))
    if since is not None:
        rows = rows.filter(created__gte=since)
    if until is not None:
        rows = rows.filter(created__lt=until)
    if types:
        rows = rows.filter(type__in=list(types))
    # Stripe's order: an older event applied after a newer one would be skipped as stale.
    return rows.order_by("created", "id")


def _replay_one(row: ProcessorEvent, *, dry_run: bool) -> ReplayResult:
    try:
        outcome = event_process(ledger_id=row.pk, force=True, dry_run=dry_run)
    except Exception as exc:
        # Not swallowed: event_process recorded it on the row (real runs) and the run reports it.
        return ReplayResult(row.stripe_event_id, row.type, "failed", [], "", f"{type(exc).__name__}: {exc}"[:2000])
    if outcome is None:
        return ReplayResult(row.stripe_event_id, row.type, "skipped", [], "another worker holds this event", "")
    return ReplayResult(row.stripe_event_id, row.type, outcome.status, list(outcome.changes), outcome.note, "")


def replay_run(
    *,
    project_id: int | None,
    requested_by: str,
    event_ids: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Sequence[str] | None = None,
    dry_run: bool = False,
    reason: str = "",
    on_result: Callable[[ReplayResult], None] | None = None,
) -> ReplayRun:
    rows = replay_events_select(project_id=project_id, event_ids=event_ids, since=since, until=until, types=types)
    ids = list(rows.values_list("pk", flat=True)[: MAX_EVENTS + 1])
    if len(ids) > MAX_EVENTS:
        raise ReplayTooLarge(f"More than {MAX_EVENTS} events match; narrow the window or the types.")
    params = {
        "event_ids": list(event_ids or []),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "types": list(types or []),
    }
    run = ReplayRun.objects.create(
        project_id=project_id, requested_by=requested_by, reason=reason, params=params, dry_run=dry_run
    )
    results: list[ReplayResult] = []
    # One row at a time, each in its own transaction (event_process's): a long replay holds no locks.
    for row in ProcessorEvent.objects.filter(pk__in=ids).order_by("created", "id").iterator(chunk_size=500):
        result = _replay_one(row, dry_run=dry_run)
        results.append(result)
        if on_result is not None:
            on_result(result)
    counts: dict[str, int] = {"selected": len(ids), "processed": 0, "ignored": 0, "failed": 0, "skipped": 0}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    with transaction.atomic():
        run.status = ReplayRun.Status.FAILED if counts["failed"] else ReplayRun.Status.SUCCEEDED
        run.counts = counts
        run.results = [result.as_dict() for result in results]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "counts", "results", "finished_at"])
        audit_record(
            actor=requested_by,
            action="replay.dry_run" if dry_run else "replay.run",
            target=f"replay #{run.pk}",
            reason=reason,
            project_id=project_id,
            before=None,
            after=counts,
        )
    log.info("webhook_replay_finished", replay_id=run.pk, dry_run=dry_run, project_id=project_id, **counts)
    return run
