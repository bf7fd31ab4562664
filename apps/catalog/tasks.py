"""Thin tasks: each takes ids and calls one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="catalog.sync_run",
    # Acknowledged on receipt and never retried: a worker killed mid-sync leaves the run `running`,
    # which the stale-run sweep marks failed; an exception marks it failed at once.
    acks_late=False,
    reject_on_worker_lost=False,
)
def catalog_sync_run_task(run_id: int) -> str:
    from apps.catalog.runs import catalog_sync_execute

    return str(catalog_sync_execute(run_id=run_id).status)
