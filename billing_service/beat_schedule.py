"""The one place that declares what Celery beat runs.

`manage.py install_beat_schedule` writes these rows into django-celery-beat's tables (it runs in
`make run` and in the container entrypoint). After that the admin owns them: an operator may change
an interval or disable a task, and a later install leaves those edits alone unless --reset is given.
Issues that add periodic work (session sweeps, ledger sweeps, reconciliation) add entries here.
Every entry can also be run by hand with a management command: sweep_ledger, purge_idempotency,
sweep_stale_runs (the heartbeat has none: it proves that beat and a worker are alive).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScheduledTask:
    name: str
    task: str
    description: str
    every_seconds: int | None = None
    crontab: str | None = None  # "minute hour day_of_month month_of_year day_of_week", UTC

    def __post_init__(self) -> None:
        if (self.every_seconds is None) == (self.crontab is None):
            raise ValueError(f"{self.name}: give exactly one of every_seconds or crontab")


BEAT_SCHEDULE: tuple[ScheduledTask, ...] = (
    ScheduledTask(
        name="scheduler-heartbeat",
        task="common.scheduler_heartbeat",
        description="Proves beat and a worker are alive; exported as billing_worker_heartbeat_timestamp_seconds.",
        every_seconds=60,
    ),
    ScheduledTask(
        name="purge-idempotency-records",
        task="common.purge_idempotency_records",
        description="Deletes stored Idempotency-Key answers older than a day.",
        crontab="17 3 * * *",
    ),
    ScheduledTask(
        name="sweep-webhook-ledger",
        task="webhooks.sweep_ledger",
        description="Re-enqueues Stripe events stuck in the ledger (lost message, killed worker, failed retries).",
        every_seconds=60,
    ),
    ScheduledTask(
        name="sweep-stale-runs",
        task="common.sweep_stale_runs",
        description=(
            "Marks replay and catalog sync runs still running after RUN_STALE_AFTER_SECONDS failed "
            "(their worker died, or none picked them up)."
        ),
        every_seconds=300,
    ),
)
