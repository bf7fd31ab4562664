"""Long runs done by a worker (replays, catalog syncs): failing them, and sweeping abandoned ones.

A run row is created `running` by the request that asks for it, its task is enqueued on commit,
and the task marks it `succeeded` or `failed`. A run whose worker died (SIGKILL, OOM, the hard
time limit) or that no worker ever picked up would stay `running` for ever; the stale-run sweep
(beat, every five minutes, or `manage.py sweep_stale_runs`) marks those failed, with an error
saying so. RUN_STALE_AFTER_SECONDS exceeds the task time limit, so a live task is never swept.

Every run model has `status` (running/succeeded/failed), `error` and `finished_at`; the table
below names each one and the field its age is measured from. Models are named by label so that
`common` imports no other app.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import structlog
from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

if TYPE_CHECKING:
    from celery import Task

log = structlog.get_logger("billing.runs")


class RunStatus(models.TextChoices):
    """Every run model's `status` choices (each model's `Status` is this)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


RunT = TypeVar("RunT", bound=models.Model)
ResultT = TypeVar("ResultT")


class _HasStatus(Protocol):
    status: str


# (model label, the field holding when the run started)
RUN_MODELS: tuple[tuple[str, str], ...] = (
    ("webhooks.ReplayRun", "created_at"),
    ("catalog.CatalogSyncRun", "started_at"),
    # A reconciliation run may take longer than the sweep's threshold; it moves heartbeat_at at every
    # page, so only one that stopped making progress is swept.
    ("reconciliation.ReconciliationRun", "heartbeat_at"),
)


def stale_after() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "RUN_STALE_AFTER_SECONDS", 900)))


def run_fail(model: type[models.Model], run_id: int, error: str) -> bool:
    """Marks a still-running run failed with `error`; False if it had already finished."""
    updated = model._default_manager.filter(pk=run_id, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, error=error[:4000], finished_at=timezone.now()
    )
    return bool(updated)


def run_enqueue_on_commit(task: Task[[int], Any], run_id: int) -> None:
    """Enqueues `task(run_id)` once the current transaction commits (the run row is then visible)."""
    # robust: a broker that is down must not turn a created run into a 5xx; the run stays
    # `running` and the stale-run sweep marks it failed.
    transaction.on_commit(lambda: task.delay(run_id), robust=True)


def run_execute(
    model: type[RunT],
    run_id: int,
    work: Callable[[RunT], ResultT],
    *,
    log_event: str,
    logger: Any,
    failed_event: str | None = None,
    select_related: tuple[str, ...] = (),
) -> tuple[RunT, ResultT | None]:
    """Loads the run and, if it is still `running`, does `work(run)`; returns the run and what work returned.

    A run already finished is left alone: logged as `<log_event>_not_running` and returned with None.
    If the work raises, the run is marked failed with the error, the exception is logged as
    `failed_event` (`<log_event>_failed` by default) and goes on to the caller. `logger` is the
    caller's, bound to the run's id under the caller's key.
    """
    rows = model._default_manager.all()
    if select_related:
        rows = rows.select_related(*select_related)
    run = rows.get(pk=run_id)
    status = cast(_HasStatus, run).status
    if status != RunStatus.RUNNING:
        logger.warning(f"{log_event}_not_running", status=status)
        return run, None
    try:
        return run, work(run)
    except Exception as exc:
        run_fail(model, run.pk, f"{type(exc).__name__}: {exc}")
        logger.exception(failed_event or f"{log_event}_failed")
        raise


def stale_runs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Marks every run `running` for longer than RUN_STALE_AFTER_SECONDS failed; counts per model."""
    now = now or timezone.now()
    threshold = stale_after()
    error = (
        f"Abandoned: still running after {int(threshold.total_seconds())} s (RUN_STALE_AFTER_SECONDS), "
        "so its worker died or no worker picked it up; marked failed by the stale-run sweep. "
        "Start a new run."
    )
    summary: dict[str, int] = {}
    for label, started_field in RUN_MODELS:
        model = apps.get_model(label)
        stale = model._default_manager.filter(status=RunStatus.RUNNING, **{f"{started_field}__lt": now - threshold})
        ids = list(stale.values_list("pk", flat=True))
        # One UPDATE guarded by the status: a run that finishes meanwhile keeps its own outcome.
        swept = model._default_manager.filter(pk__in=ids, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, error=error, finished_at=now
        )
        summary[label] = swept
        if swept:
            log.warning("stale_runs_failed", model=label, count=swept, run_ids=ids[:50])
    log.info("stale_runs_swept", **summary)
    return summary
