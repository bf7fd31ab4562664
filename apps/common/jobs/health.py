"""Reads: how each periodic job stands now (GET /api/v1/observability/scheduler).

Every billing_service/beat_schedule.py entry, joined with what beat has installed (its PeriodicTask
row: enabled, the interval or crontab an operator may have changed, when beat last sent it), its
policy as it stands (JobPolicy, else the declaration) and its JobRun history.

The overdue rule. An interval job is overdue when its last success finished more than twice its
interval ago; a crontab job once the second scheduled time after its last success has passed, plus
its timeout (a Monday-to-Saturday job is not overdue on Monday morning for Sunday's gap). One missed
or failed tick is tolerated (a retry may still land), two are not. A job that has no success on
record is measured from when it was first known instead:
the earliest of its first recorded run, its JobPolicy row's last change and its PeriodicTask row's
last change. (PeriodicTask.date_changed alone would not do: beat saves the row every few minutes
as it sends, so a job that beat sends and no worker ever starts would look new forever. The policy
row is written by install_beat_schedule and changes only when an operator edits it.) Run rows are
purged after JOB_RUN_RETENTION_DAYS, so a success older than that counts as none, and the oldest
kept run is then the reference, which is older than twice any interval we schedule.

A disabled job, or one not installed (beat does not know it, so it never runs), is never overdue.
A re-enabled job whose last success is old is overdue until it next succeeds (run it now).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.common.jobs.lock import job_lock_held
from apps.common.jobs.policy import policy_for
from apps.common.jobs.ticks import crontab_of, interval_seconds, next_due, next_occurrence
from apps.common.models import JobPolicy, JobRun
from billing_service.beat_schedule import BEAT_SCHEDULE, JobPolicySpec, ScheduledTask

Outcome = JobRun.Outcome
OVERDUE_INTERVALS = 2
RECENT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Schedule:
    every_seconds: int | None
    crontab: str | None
    timezone: str | None  # a crontab's, as installed; None for an interval

    def as_dict(self) -> dict[str, Any]:
        if self.every_seconds is not None:
            return {"every_seconds": self.every_seconds}
        return {"crontab": self.crontab, "timezone": self.timezone or "UTC"}


@dataclass(frozen=True)
class LastError:
    at: datetime
    error: str
    trigger: str
    attempt: int


@dataclass(frozen=True)
class JobHealth:
    name: str
    task: str
    description: str
    installed: bool
    enabled: bool
    schedule: Schedule
    interval_seconds: int
    policy: JobPolicySpec
    last_sent_at: datetime | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_succeeded_at: datetime | None
    last_error: LastError | None
    running_since: datetime | None
    lock_held: bool
    runs_24h: dict[str, int]
    next_due_at: datetime | None
    overdue_after: datetime | None
    overdue: bool

    @property
    def running(self) -> bool:
        return self.running_since is not None


@dataclass(frozen=True)
class SchedulerHealth:
    checked_at: datetime
    jobs: list[JobHealth] = field(default_factory=list)

    @property
    def overdue(self) -> list[str]:
        return [job.name for job in self.jobs if job.overdue]

    @property
    def healthy(self) -> bool:
        return not self.overdue


def _schedule(entry: ScheduledTask, row: PeriodicTask | None) -> Schedule:
    """As installed (an operator may have changed it), else as declared: ticks.schedule_of's rule."""
    if row is not None and row.interval is not None:
        return Schedule(int(row.interval.schedule.run_every.total_seconds()), None, None)
    if row is not None and row.crontab is not None:
        c = row.crontab
        expression = f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
        return Schedule(None, expression, str(c.timezone))
    return Schedule(entry.every_seconds, entry.crontab, None if entry.crontab is None else "UTC")


def _run_figures(names: list[str], now: datetime) -> dict[str, dict[str, Any]]:
    """Per job, in one aggregate query over its kept runs: the latest of each kind, the 24 h counts."""
    recent = Q(started_at__gte=now - RECENT_WINDOW)
    rows = (
        JobRun.objects.filter(job__in=names)
        .order_by()
        .values("job")
        .annotate(
            first_started_at=Min("started_at"),
            # A skipped start did not run the body: "last started" means the last one that did.
            last_started_at=Max("started_at", filter=~Q(outcome=Outcome.SKIPPED)),
            last_finished_at=Max("finished_at", filter=Q(outcome__in=[Outcome.SUCCEEDED, Outcome.FAILED])),
            last_succeeded_at=Max("finished_at", filter=Q(outcome=Outcome.SUCCEEDED)),
            last_failed_at=Max("finished_at", filter=Q(outcome=Outcome.FAILED)),
            running_since=Min("started_at", filter=Q(outcome=Outcome.RUNNING)),
            **{f"recent_{o}": Count("pk", filter=recent & Q(outcome=o)) for o in Outcome.values},
        )
    )
    return {row["job"]: row for row in rows}


def _last_errors(figures: dict[str, dict[str, Any]]) -> dict[str, LastError]:
    """The most recent failed run of each job (one query: the rows at each job's last failure time)."""
    wanted = Q()
    for job, row in figures.items():
        if row["last_failed_at"] is not None:
            wanted |= Q(job=job, finished_at=row["last_failed_at"])
    if not wanted:
        return {}
    errors: dict[str, LastError] = {}
    # Two failures finishing in the same microsecond: the later row wins.
    for run in JobRun.objects.filter(wanted, outcome=Outcome.FAILED).order_by("pk"):
        assert run.finished_at is not None
        errors[run.job] = LastError(at=run.finished_at, error=run.error, trigger=run.trigger, attempt=run.attempt)
    return errors


def _known_since(*instants: datetime | None) -> datetime | None:
    known = [instant for instant in instants if instant is not None]
    return min(known) if known else None


def _overdue_after(
    reference: datetime, every_seconds: int | None, crontab: str | None, *, grace_seconds: int
) -> datetime:
    """When a job whose last success (or first sighting) is `reference` becomes overdue.

    Interval jobs: twice the interval later. Crontab jobs: once the second scheduled time after the
    reference has passed, plus the job's timeout (that run may still be going): a Monday-to-Saturday
    job is not overdue on Monday morning for Sunday's gap, and a daily one after about two days.
    """
    if every_seconds is not None:
        return reference + OVERDUE_INTERVALS * timedelta(seconds=every_seconds)
    assert crontab is not None
    cron = crontab_of(crontab)
    second = next_occurrence(cron, next_occurrence(cron, reference))
    return second + timedelta(seconds=grace_seconds)


def scheduler_health(*, now: datetime | None = None) -> SchedulerHealth:
    """Every declared job as it stands at `now` (default: the current time)."""
    now = now or timezone.now()
    names = [entry.name for entry in BEAT_SCHEDULE]
    tasks = {row.name: row for row in PeriodicTask.objects.filter(name__in=names).select_related("interval", "crontab")}
    policy_changed = dict(JobPolicy.objects.filter(job__in=names).values_list("job", "updated_at"))
    figures = _run_figures(names, now)
    errors = _last_errors(figures)
    jobs = []
    for entry in BEAT_SCHEDULE:
        row = tasks.get(entry.name)
        runs = figures.get(entry.name, {})
        schedule = _schedule(entry, row)
        every = interval_seconds(schedule.every_seconds, schedule.crontab, at=now)
        enabled = row is not None and row.enabled
        last_succeeded_at = runs.get("last_succeeded_at")
        reference = last_succeeded_at or _known_since(
            runs.get("first_started_at"), policy_changed.get(entry.name), row.date_changed if row else None
        )
        policy = policy_for(entry.name)
        overdue_after = (
            _overdue_after(reference, schedule.every_seconds, schedule.crontab, grace_seconds=policy.timeout_seconds)
            if enabled and reference
            else None
        )
        jobs.append(
            JobHealth(
                name=entry.name,
                task=entry.task,
                description=entry.description,
                installed=row is not None,
                enabled=enabled,
                schedule=schedule,
                interval_seconds=every,
                policy=policy,
                last_sent_at=row.last_run_at if row else None,
                last_started_at=runs.get("last_started_at"),
                last_finished_at=runs.get("last_finished_at"),
                last_succeeded_at=last_succeeded_at,
                last_error=errors.get(entry.name),
                running_since=runs.get("running_since"),
                lock_held=job_lock_held(entry.name),
                runs_24h={o: runs.get(f"recent_{o}", 0) for o in Outcome.values},
                next_due_at=(
                    next_due(schedule.every_seconds, schedule.crontab, last_run_at=row.last_run_at, at=now)
                    if row is not None and enabled
                    else None
                ),
                overdue_after=overdue_after,
                overdue=overdue_after is not None and now > overdue_after,
            )
        )
    return SchedulerHealth(checked_at=now, jobs=jobs)
