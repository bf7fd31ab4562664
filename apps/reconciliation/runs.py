"""A reconciliation run's lifecycle: one running run per project, dead runs taken over, the outcome.

Two guards, for two different questions:
- "Is a run of this project in progress?": the partial unique constraint on ReconciliationRun (one
  `running` row per project). Creating a second one fails, and the trigger is told which run it is
  (RunInProgress, 409 over the API).
- "Is that run's process alive?": a PostgreSQL session advisory lock `reconcile:<project id>` held by
  the process executing the run. A crashed, OOM-killed or time-limited worker loses its connection
  and with it the lock. A `running` row whose lock is free and that is older than
  DEAD_RUN_GRACE_SECONDS (an API run waits lock-less in the broker's queue until a worker takes it)
  is dead: the next trigger marks it failed and its successor resumes its cursors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import structlog
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.common.exceptions import Conflict, ServiceError
from apps.common.locks import session_lock, session_lock_held
from apps.projects.models import Project
from apps.reconciliation import config
from apps.reconciliation.models import ReconciliationRun

log = structlog.get_logger("billing.reconciliation")

Mode = ReconciliationRun.Mode
Status = ReconciliationRun.Status
ERROR_LENGTH = 4000


class InvalidRunRequest(ServiceError, ValueError):
    """A run asked for with values it cannot have (mode, days_back): 400 with the reason."""

    status_code = 400
    default_detail = "The reconciliation run request is invalid."


class RunInProgress(Conflict):
    """Another run of the project is running: 409 naming it."""

    def __init__(self, run: ReconciliationRun | None, *, project: Project) -> None:
        self.run = run
        if run is None:
            detail = f"A reconciliation of project {project.slug} is in progress (another process holds its lock)."
        else:
            detail = (
                f"Reconciliation run #{run.pk} ({run.mode}) of project {project.slug} is in progress since "
                f"{run.started_at:%Y-%m-%dT%H:%M:%SZ}."
            )
        super().__init__(detail)

    @property
    def response_extra(self) -> dict[str, int | None]:
        return {"run_id": self.run.pk if self.run is not None else None}


class RunAbandoned(Exception):
    """This run's row is no longer `running` (the stale-run sweep or a successor gave up on it)."""


def validated_request(*, mode: str, days_back: int | None) -> int | None:
    """The run's days_back (None for a full run), or InvalidRunRequest saying what is wrong."""
    if mode not in Mode.values:
        raise InvalidRunRequest(f"mode must be one of {', '.join(Mode.values)}, not {mode!r}.")
    if mode == Mode.FULL:
        return None
    if days_back is None:
        return config.days_back()
    if isinstance(days_back, bool) or not isinstance(days_back, int) or days_back < 1:
        raise InvalidRunRequest("days_back must be a whole number of days, at least 1.")
    if days_back > config.MAX_DAYS_BACK:
        raise InvalidRunRequest(
            f"days_back may be at most {config.MAX_DAYS_BACK}: Stripe's Events API keeps 30 days of events. "
            "Run a full reconciliation (mode=full) to compare everything."
        )
    return days_back


# --- the per-project lock -----------------------------------------------------------------------
@contextmanager
def project_lock(project_id: int) -> Iterator[bool]:
    """Yields True when this process now holds the project's reconciliation lock, False otherwise.

    Session-level (apps/common/locks.py): a run commits page by page, and a dead process must free
    the lock with its connection.
    """
    with session_lock(f"reconcile:{project_id}") as acquired:
        yield acquired


def lock_held_elsewhere(project_id: int) -> bool:
    """Whether another database session holds the project's reconciliation lock now."""
    return session_lock_held(f"reconcile:{project_id}", by_another_session=True)


# --- start ----------------------------------------------------------------------------------------
def running_run(project: Project) -> ReconciliationRun | None:
    return ReconciliationRun.objects.filter(project=project, status=Status.RUNNING).first()


def run_is_dead(run: ReconciliationRun, *, now: datetime) -> bool:
    """A running run nobody executes: its lock is free and it is past the queueing grace."""
    grace = timedelta(seconds=config.DEAD_RUN_GRACE_SECONDS)
    if run.started_at > now - grace:
        return False
    if connection.vendor != "postgresql":
        # No advisory locks (SQLite, development): a run that checkpointed lately is alive.
        return run.heartbeat_at < now - grace
    return not lock_held_elsewhere(run.project_id)


def run_abandon(run: ReconciliationRun, *, reason: str) -> bool:
    """Marks a running run failed with `reason`; False if it had finished meanwhile."""
    now = timezone.now()
    updated = ReconciliationRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
        status=Status.FAILED, error=reason[:ERROR_LENGTH], finished_at=now
    )
    if updated:
        from apps.reconciliation import metrics

        metrics.RUNS.labels(run.mode, "failed").inc()
        log.warning("reconciliation_run_abandoned", run_id=run.pk, project_id=run.project_id, reason=reason)
    return bool(updated)


def run_start(
    *,
    project: Project,
    mode: str,
    days_back: int | None,
    dry_run: bool,
    trigger: str,
    requested_by: str = "",
) -> ReconciliationRun:
    """The project's new `running` run; RunInProgress when a live one exists.

    A dead running run (see run_is_dead) is marked failed first and named as the new run's
    `resumed_from`. Two triggers at the same moment both try the INSERT: the partial unique
    constraint lets one through, and the other is told about it.
    """
    days_back = validated_request(mode=mode, days_back=days_back)
    resumed_from: ReconciliationRun | None = None
    for _ in range(3):
        current = running_run(project)
        if current is not None:
            if not run_is_dead(current, now=timezone.now()):
                raise RunInProgress(current, project=project)
            if run_abandon(
                current,
                reason="Abandoned: its process stopped (the project's reconciliation lock was free); "
                "a new run takes over its cursors.",
            ):
                resumed_from = current
        try:
            with transaction.atomic():
                run = ReconciliationRun.objects.create(
                    project=project,
                    mode=mode,
                    days_back=days_back,
                    dry_run=dry_run,
                    trigger=trigger,
                    requested_by=requested_by[:255],
                    resumed_from=resumed_from,
                )
        except IntegrityError:
            # Another trigger created its run between our read and our INSERT: name that one.
            continue
        log.info(
            "reconciliation_run_started",
            run_id=run.pk,
            project_id=project.pk,
            mode=mode,
            days_back=days_back,
            dry_run=dry_run,
            trigger=trigger,
            resumed_from=resumed_from.pk if resumed_from else None,
        )
        return run
    raise RunInProgress(running_run(project), project=project)
