"""Replays: run ledger events through their handlers again, on an operator's request.

A replay is capped at MAX_EVENTS; a wider selection is refused (400) rather than silently cut.
Through the API it is a run done by a worker: `replay_request` creates the run and enqueues its
task on commit, the caller polls the run, and `replay_execute` (the task's body) does the work.
The command line and the admin run it inline (`replay_run`), as an operator waits for it there.
Replaying events already applied must change nothing: that is the handlers' idempotency, which a
dry run lets an operator check first.
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

from apps.common.audit import audit_record
from apps.common.runs import run_enqueue_on_commit, run_execute
from apps.webhooks.models import ProcessorEvent, ReplayRun
from apps.webhooks.processing import event_process
from apps.webhooks.tasks import replay_run_task

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


def _params(
    *,
    event_ids: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    types: Sequence[str] | None,
) -> dict[str, Any]:
    return {
        "event_ids": list(event_ids or []),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "types": list(types or []),
    }


def _selection(run: ReplayRun) -> QuerySet[ProcessorEvent]:
    """The run's events: its parameters, among the events stored when it was asked for."""
    params = run.params
    since, until = params.get("since"), params.get("until")
    rows = replay_events_select(
        project_id=run.project_id,
        event_ids=params.get("event_ids") or None,
        since=datetime.fromisoformat(since) if since else None,
        until=datetime.fromisoformat(until) if until else None,
        types=params.get("types") or None,
    )
    return rows.filter(received_at__lte=run.created_at)


def replay_start(
    *,
    project_id: int | None,
    requested_by: str,
    event_ids: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Sequence[str] | None = None,
    dry_run: bool = False,
    reason: str = "",
) -> ReplayRun:
    """Creates a `running` run for the selection; ReplayTooLarge if more than MAX_EVENTS match."""
    rows = replay_events_select(project_id=project_id, event_ids=event_ids, since=since, until=until, types=types)
    selected = rows[: MAX_EVENTS + 1].count()
    if selected > MAX_EVENTS:
        raise ReplayTooLarge(f"More than {MAX_EVENTS} events match; narrow the window or the types.")
    return ReplayRun.objects.create(
        project_id=project_id,
        requested_by=requested_by,
        reason=reason,
        params=_params(event_ids=event_ids, since=since, until=until, types=types),
        dry_run=dry_run,
        counts={"selected": selected},
    )


def replay_request(
    *,
    project_id: int | None,
    requested_by: str,
    event_ids: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Sequence[str] | None = None,
    dry_run: bool = False,
    reason: str = "",
) -> ReplayRun:
    """Creates the run and hands it to a worker once it is committed (the API's path)."""
    with transaction.atomic():
        run = replay_start(
            project_id=project_id,
            requested_by=requested_by,
            event_ids=event_ids,
            since=since,
            until=until,
            types=types,
            dry_run=dry_run,
            reason=reason,
        )
        run_enqueue_on_commit(replay_run_task, run.pk)
    log.info("webhook_replay_requested", replay_id=run.pk, dry_run=dry_run, project_id=project_id)
    return run


def replay_execute(*, replay_id: int, on_result: Callable[[ReplayResult], None] | None = None) -> ReplayRun:
    """Runs a `running` run's events and records the outcome; a run already finished is left alone.

    If this raises (a bug, the soft time limit), the run is marked failed with the error first.
    """
    run, _ = run_execute(
        ReplayRun,
        replay_id,
        lambda run: _replay_execute(run, on_result=on_result),
        log_event="webhook_replay",
        failed_event="webhook_replay_crashed",
        logger=log.bind(replay_id=replay_id),
    )
    return run


def _replay_execute(run: ReplayRun, *, on_result: Callable[[ReplayResult], None] | None) -> ReplayRun:
    ids = list(_selection(run).values_list("pk", flat=True)[: MAX_EVENTS + 1])
    if len(ids) > MAX_EVENTS:
        raise ReplayTooLarge(f"More than {MAX_EVENTS} events match; narrow the window or the types.")
    results: list[ReplayResult] = []
    # One row at a time, each in its own transaction (event_process's): a long replay holds no locks.
    for row in ProcessorEvent.objects.filter(pk__in=ids).order_by("created", "id").iterator(chunk_size=500):
        result = _replay_one(row, dry_run=run.dry_run)
        results.append(result)
        if on_result is not None:
            on_result(result)
    counts: dict[str, int] = {"selected": len(ids), "processed": 0, "ignored": 0, "failed": 0, "skipped": 0}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    with transaction.atomic():
        # The outcome is written even if the stale-run sweep gave up on this run meanwhile: what
        # happened wins over the guess.
        run.status = ReplayRun.Status.FAILED if counts["failed"] else ReplayRun.Status.SUCCEEDED
        run.counts = counts
        run.results = [result.as_dict() for result in results]
        run.error = ""
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "counts", "results", "error", "finished_at"])
        audit_record(
            actor=run.requested_by,
            action="replay.dry_run" if run.dry_run else "replay.run",
            target=f"replay #{run.pk}",
            reason=run.reason,
            project_id=run.project_id,
            before=None,
            after=counts,
        )
    log.info("webhook_replay_finished", replay_id=run.pk, dry_run=run.dry_run, project_id=run.project_id, **counts)
    return run


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
    """A replay done here and now (the command line, the admin): start, then execute inline."""
    run = replay_start(
        project_id=project_id,
        requested_by=requested_by,
        event_ids=event_ids,
        since=since,
        until=until,
        types=types,
        dry_run=dry_run,
        reason=reason,
    )
    return replay_execute(replay_id=run.pk, on_result=on_result)
