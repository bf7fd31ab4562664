"""Thin tasks. The periodic ones go through apps.common.jobs.task.periodic_job (the job's lock, one
run per tick, the JobRun row, retries by its policy, the metrics); the plain one executes a run the
API or the admin requested."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.common.jobs.task import periodic_job


@periodic_job("reconciliation.reconcile_daily")
def reconcile_daily() -> dict[str, Any]:
    """Incremental reconciliation of every project (the last RECONCILIATION_DAYS_BACK days)."""
    from apps.reconciliation.services import reconcile_job_body

    return reconcile_job_body(job="reconcile-daily", mode="incremental")


@periodic_job("reconciliation.reconcile_weekly")
def reconcile_weekly() -> dict[str, Any]:
    """Full reconciliation of every project (every object of each compared type)."""
    from apps.reconciliation.services import reconcile_job_body

    return reconcile_job_body(job="reconcile-weekly", mode="full")


@shared_task(
    name="reconciliation.run",
    # Acknowledged on receipt and never retried: a worker killed mid-run leaves the run `running`
    # with its lock free; the next trigger (or the stale-run sweep) marks it failed, and the next
    # run resumes its cursors. The time limits come with each message (the mode's job policy).
    acks_late=False,
    reject_on_worker_lost=False,
)
def reconciliation_run_task(run_id: int) -> str:
    from apps.reconciliation.services import reconciliation_run_execute

    return str(reconciliation_run_execute(run_id=run_id).status)
