"""The one place that declares what Celery beat runs, and how each job is retried and timed out.

`manage.py install_beat_schedule` writes these rows into django-celery-beat's tables (it runs in
`make run` and in the container entrypoint). After that the admin owns them: an operator may change
an interval or disable a task, and a later install leaves those edits alone unless --reset is given.
Issues that add periodic work (session sweeps, ledger sweeps, reconciliation) add entries here.
Every entry can also be run by hand with a management command: sweep_ledger, purge_idempotency,
sweep_stale_runs, purge_job_runs, deliver_notifications (the heartbeat has none: it proves that beat
and a worker are alive), or from the admin's "run now" action, which goes through the same lock as beat.

Each entry's `policy` is installed into JobPolicy rows the same way: the admin may change it without
a deploy, and a later install keeps the edit unless --reset. Every task named here is declared with
apps.common.jobs.periodic_job, which applies the policy (retries with backoff and jitter, a run
timeout), runs each scheduled tick once, and records a JobRun row per start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class JobPolicySpec:
    """How a job is retried and how long one attempt may run.

    The delay before attempt n+1 is min(base * multiplier**(n-1), max) plus a uniform jitter in
    [0, jitter]; after `max_attempts` attempts the job is recorded failed until its next tick.
    """

    max_attempts: int = 3
    base_backoff_seconds: int = 30
    backoff_multiplier: Decimal = Decimal("2")
    max_backoff_seconds: int = 600
    jitter_seconds: int = 10
    timeout_seconds: int = 240

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be at least 1")
        if self.max_backoff_seconds < self.base_backoff_seconds:
            raise ValueError("max_backoff_seconds must be at least base_backoff_seconds")
        if self.timeout_seconds < 1:
            raise ValueError("timeout_seconds must be at least 1")


def _setting_int(name: str, default: int) -> int:
    """A schedule taken from the settings (the declared default before Django is configured)."""
    from django.conf import settings

    return int(getattr(settings, name, default)) if settings.configured else default


@dataclass(frozen=True)
class ScheduledTask:
    name: str
    task: str
    description: str
    every_seconds: int | None = None
    crontab: str | None = None  # "minute hour day_of_month month_of_year day_of_week", UTC
    policy: JobPolicySpec = field(default_factory=JobPolicySpec)

    def __post_init__(self) -> None:
        if (self.every_seconds is None) == (self.crontab is None):
            raise ValueError(f"{self.name}: give exactly one of every_seconds or crontab")


BEAT_SCHEDULE: tuple[ScheduledTask, ...] = (
    ScheduledTask(
        name="scheduler-heartbeat",
        task="common.scheduler_heartbeat",
        description="Proves beat and a worker are alive; exported as billing_worker_heartbeat_timestamp_seconds.",
        every_seconds=60,
        # Retrying a missed heartbeat proves nothing: the next tick is the retry.
        policy=JobPolicySpec(max_attempts=1, timeout_seconds=30),
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
        # A minute-long interval: retries must land before the next tick to be worth anything.
        policy=JobPolicySpec(max_attempts=2, base_backoff_seconds=10, max_backoff_seconds=20, jitter_seconds=5),
    ),
    ScheduledTask(
        name="drain-webhook-ledger",
        task="webhooks.drain_ledger_scheduled",
        description=(
            "Processes Stripe events waiting in the ledger whose wake-up was lost (a web process died, the broker "
            "was away); stored events normally wake a drain themselves within a second."
        ),
        every_seconds=30,
        # The next tick is the retry; a drain hands over to a fresh task after 60 s of work.
        policy=JobPolicySpec(max_attempts=1, timeout_seconds=180),
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
    ScheduledTask(
        name="purge-job-runs",
        task="common.purge_job_runs",
        description="Deletes periodic job run rows older than JOB_RUN_RETENTION_DAYS.",
        crontab="41 3 * * *",
    ),
    ScheduledTask(
        name="sweep-hosted-sessions",
        task="recovery.sweep_hosted_sessions",
        description=(
            "Marks open hosted sessions past their expiry expired, and expired ones whose invoice is still open "
            "abandoned after HOSTED_SESSION_ABANDON_AFTER_SECONDS (set-based UPDATEs)."
        ),
        every_seconds=60,
        # A minute-long interval: retries must land before the next tick to be worth anything.
        policy=JobPolicySpec(max_attempts=2, base_backoff_seconds=10, max_backoff_seconds=20, jitter_seconds=5),
    ),
    ScheduledTask(
        name="hosted-session-recovery",
        task="recovery.hosted_session_recovery",
        description=(
            "Sweeps, then gives abandoned sessions a way back (Stripe's recovery URL, else a regenerated session) "
            "and notifies by email or Slack; one RecoveryRun per run. Off when HOSTED_RECOVERY_WORKER_ENABLED=false."
        ),
        # Read once, when install_beat_schedule writes the row: after a change, install with --reset
        # or edit the task's interval in the admin.
        every_seconds=_setting_int("HOSTED_RECOVERY_INTERVAL_SECONDS", 300),
        # Up to HOSTED_RECOVERY_LIMIT sessions, each with Stripe calls and a notification: more time
        # than the default. A retry re-sweeps and resumes; the per-session claims keep it from
        # repeating an attempt.
        policy=JobPolicySpec(
            max_attempts=2, base_backoff_seconds=60, max_backoff_seconds=120, jitter_seconds=15, timeout_seconds=600
        ),
    ),
    ScheduledTask(
        name="deliver-notifications",
        task="fulfillment.deliver_scheduled",
        description=(
            "Delivers the notifications due to the micro-apps' endpoints (the safety net behind the wake-up on "
            "commit). Its policy's backoff fields (base, multiplier, max, jitter) are also the retry policy of "
            "each delivery, for up to FULFILLMENT_RETRY_WINDOW_SECONDS. Off when FULFILLMENT_WORKER_ENABLED=false."
        ),
        # Read once, when install_beat_schedule writes the row (as for the recovery interval).
        every_seconds=_setting_int("FULFILLMENT_POLL_INTERVAL_SECONDS", 10),
        # max_attempts 1: the next tick is the run's retry. The backoff fields are read by
        # apps.entitlements.notifications.delivery for each failed delivery: 30 s, 1 min, 2 min ... then
        # hourly, each plus up to 30 s of jitter. A run hands over to a fresh task after 60 s of work.
        policy=JobPolicySpec(
            max_attempts=1, base_backoff_seconds=30, max_backoff_seconds=3600, jitter_seconds=30, timeout_seconds=180
        ),
    ),
    ScheduledTask(
        name="reconcile-daily",
        task="reconciliation.reconcile_daily",
        description=(
            "Incremental reconciliation with Stripe of every project: the events and new objects of the last "
            "RECONCILIATION_DAYS_BACK days, Monday to Saturday at RECONCILIATION_SCHEDULE_HOUR UTC (Sunday's full "
            "run covers the rest). Beat's runs are off when RECONCILIATION_ENABLED=false."
        ),
        # The hour is read when install_beat_schedule writes the row (as for the recovery interval).
        crontab=f"0 {_setting_int('RECONCILIATION_SCHEDULE_HOUR', 3)} * * 1-6",
        # A retry resumes each failed project from its cursors and skips the projects already done.
        policy=JobPolicySpec(
            max_attempts=3, base_backoff_seconds=300, max_backoff_seconds=1800, jitter_seconds=60, timeout_seconds=3600
        ),
    ),
    ScheduledTask(
        name="reconcile-weekly",
        task="reconciliation.reconcile_weekly",
        description=(
            "Full reconciliation with Stripe of every project (every subscription, payment intent, charge and "
            "customer), Sunday at RECONCILIATION_SCHEDULE_HOUR UTC. Off when RECONCILIATION_ENABLED=false."
        ),
        crontab=f"0 {_setting_int('RECONCILIATION_SCHEDULE_HOUR', 3)} * * 0",
        policy=JobPolicySpec(
            max_attempts=3,
            base_backoff_seconds=600,
            max_backoff_seconds=1800,
            jitter_seconds=60,
            timeout_seconds=4 * 3600,
        ),
    ),
)


def scheduled_task(name: str) -> ScheduledTask:
    """The declared entry called `name` (KeyError when none is)."""
    for entry in BEAT_SCHEDULE:
        if entry.name == name:
            return entry
    raise KeyError(name)


def scheduled_task_for(task: str) -> ScheduledTask:
    """The declared entry whose Celery task is `task` (KeyError when none is)."""
    for entry in BEAT_SCHEDULE:
        if entry.task == task:
            return entry
    raise KeyError(task)
