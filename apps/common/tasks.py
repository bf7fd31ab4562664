"""Thin periodic tasks: each calls one service. apps.common.jobs.task.periodic_job does the rest."""

from __future__ import annotations

from apps.common.jobs.task import periodic_job


@periodic_job("common.scheduler_heartbeat")
def scheduler_heartbeat() -> dict[str, int]:
    """Beat sends this; the worker running it proves both are alive."""
    from apps.common.heartbeat import heartbeat_record

    return {"beats": heartbeat_record()}


@periodic_job("common.purge_idempotency_records")
def purge_idempotency_records() -> dict[str, int]:
    from apps.common.idempotency import idempotency_records_purge

    return {"deleted": idempotency_records_purge()}


@periodic_job("common.sweep_stale_runs")
def sweep_stale_runs() -> dict[str, int]:
    from apps.common.runs import stale_runs_sweep

    return stale_runs_sweep()


@periodic_job("common.purge_job_runs")
def purge_job_runs() -> dict[str, int]:
    from apps.common.jobs.purge import job_runs_purge

    return {"deleted": job_runs_purge()}
