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

from datetime import datetime, timedelta

import structlog
from django.apps import apps
from django.conf import settings
from django.db import models
from django.utils import timezone

log = structlog.get_logger("billing.runs")

RUNNING, FAILED = "running", "failed"

# (model label, the field holding when the run started)
RUN_MODELS: tuple[tuple[str, str], ...] = (
    ("webhooks.ReplayRun", "created_at"),
    ("catalog.CatalogSyncRun", "started_at"),
)


def stale_after() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "RUN_STALE_AFTER_SECONDS", 900)))


def run_fail(model: type[models.Model], run_id: int, error: str) -> bool:
    """Marks a still-running run failed with `error`; False if it had already finished."""
    updated = model._default_manager.filter(pk=run_id, status=RUNNING).update(
        status=FAILED, error=error[:4000], finished_at=timezone.now()
    )
    return bool(updated)


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
        stale = model._default_manager.filter(status=RUNNING, **{f"{started_field}__lt": now - threshold})
        ids = list(stale.values_list("pk", flat=True))
        # One UPDATE guarded by the status: a run that finishes meanwhile keeps its own outcome.
        swept = model._default_manager.filter(pk__in=ids, status=RUNNING).update(
            status=FAILED, error=error, finished_at=now
        )
        summary[label] = swept
        if swept:
            log.warning("stale_runs_failed", model=label, count=swept, run_ids=ids[:50])
    log.info("stale_runs_swept", **summary)
    return summary
