"""Catalog sync runs: the sync (apps/catalog/sync.py) as long work done by a worker.

`catalog_sync_request` creates a `running` run and enqueues its task on commit (the API answers 202
with it); `catalog_sync_execute`, the task's body, pulls from Stripe and records the counts. The
`sync_catalog` command runs the same two steps inline. A run whose worker died is marked failed by
the stale-run sweep (apps/common/runs.py); one whose sync raised is marked failed at once.
"""

from __future__ import annotations

import structlog
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import CatalogSyncRun
from apps.catalog.sync import Progress, catalog_sync
from apps.catalog.tasks import catalog_sync_run_task
from apps.common.runs import run_enqueue_on_commit, run_execute
from apps.projects.models import Project

log = structlog.get_logger("billing.catalog")


def catalog_sync_start(*, project: Project | None, requested_by: str = "") -> CatalogSyncRun:
    return CatalogSyncRun.objects.create(project=project, requested_by=requested_by[:255])


def catalog_sync_request(*, project: Project, requested_by: str = "") -> CatalogSyncRun:
    """Creates the run and hands it to a worker once it is committed (the API's path)."""
    with transaction.atomic():
        run = catalog_sync_start(project=project, requested_by=requested_by)
        run_enqueue_on_commit(catalog_sync_run_task, run.pk)
    log.info("catalog_sync_requested", run_id=run.pk, project_id=project.pk)
    return run


def catalog_sync_execute(*, run_id: int, progress: Progress | None = None) -> CatalogSyncRun:
    """Syncs a `running` run's project (every project's when it has none) and records the counts.

    A run already finished is left alone. If the sync raises (Stripe unavailable, a bug, the soft
    time limit), the run is marked failed with the error, and the exception goes on to the caller.
    """
    # No transaction around the sync: it talks to Stripe page by page, and each upsert commits on
    # its own, so that a long sync holds no locks.
    run, report = run_execute(
        CatalogSyncRun,
        run_id,
        lambda run: catalog_sync(project=run.project, progress=progress),
        log_event="catalog_sync",
        logger=log.bind(run_id=run_id),
        select_related=("project",),
    )
    if report is None:  # the run had already finished
        return run
    run.counts = {"products": report.products, "prices": report.prices, "skipped": len(report.skipped_products)}
    run.status = CatalogSyncRun.Status.SUCCEEDED
    run.error = ""
    run.finished_at = timezone.now()
    # Written even if the stale-run sweep gave up on this run meanwhile: what happened wins.
    run.save(update_fields=["counts", "status", "error", "finished_at"])
    log.info("catalog_sync_finished", run_id=run.pk, project_id=run.project_id, **run.counts)
    return run
