"""Thin periodic tasks: each calls one service. apps.common.jobs.task.periodic_job does the rest
(the job's lock, one run per tick, the JobRun row, retries by its policy, the metrics)."""

from __future__ import annotations

from typing import Any

from apps.common.jobs.task import periodic_job


@periodic_job("recovery.sweep_hosted_sessions")
def sweep_hosted_sessions() -> dict[str, int]:
    """Open hosted sessions past expiry -> expired; expired ones of open invoices -> abandoned."""
    from apps.recovery.sweeps import sweep_hosted_sessions as sweep

    counts = sweep()
    return {"expired": counts["expired"], "abandoned": counts["abandoned"]}


@periodic_job("recovery.hosted_session_recovery")
def hosted_session_recovery() -> dict[str, Any]:
    """One recovery run (a RecoveryRun row), or {"enabled": false} when HOSTED_RECOVERY_WORKER_ENABLED is off."""
    from apps.recovery.worker import recovery_job_body

    return recovery_job_body()
