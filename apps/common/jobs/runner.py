"""What every periodic job does around its body: lock, claim the tick, record, retry, measure."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.jobs import metrics
from apps.common.jobs.lock import job_lock
from apps.common.jobs.policy import policy_for, retry_delay_seconds
from apps.common.jobs.ticks import schedule_of, tick_of
from apps.common.models import JobRun
from billing_service.beat_schedule import JobPolicySpec, scheduled_task

log = structlog.get_logger("billing.jobs")

Trigger = JobRun.Trigger
Outcome = JobRun.Outcome
ERROR_LENGTH = 500


@dataclass(frozen=True)
class JobStart:
    """Why and how this start happened: the arguments a periodic task's message carries."""

    job: str
    trigger: str = Trigger.SCHEDULED
    attempt: int = 1
    tick: datetime | None = None  # a retry carries the tick of the attempt it retries
    requested_by: str = ""
    task_id: str = ""


@dataclass(frozen=True)
class RetryOrder:
    """A failed attempt's next attempt, to be enqueued once the lock is released."""

    start: JobStart
    delay_seconds: float


@dataclass(frozen=True)
class JobResult:
    run: JobRun
    retry: RetryOrder | None = None


def _short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= ERROR_LENGTH else text[: ERROR_LENGTH - 1] + "…"


def _skipped(start: JobStart, now: datetime, reason: str) -> JobRun:
    run = JobRun.objects.create(
        job=start.job,
        trigger=start.trigger,
        attempt=start.attempt,
        tick=start.tick,
        outcome=Outcome.SKIPPED,
        started_at=now,
        finished_at=now,
        duration_ms=0,
        error=reason,
        task_id=start.task_id,
        requested_by=start.requested_by,
    )
    metrics.JOB_RUNS.labels(start.job, start.trigger, Outcome.SKIPPED).inc()
    log.info("job_skipped", job=start.job, trigger=start.trigger, attempt=start.attempt, reason=reason)
    return run


def _abandon_dead_runs(job: str, now: datetime) -> None:
    """Runs left `running` by a worker that died: we hold the lock, so none of them is alive."""
    dead = list(JobRun.objects.filter(job=job, outcome=Outcome.RUNNING).values_list("pk", "trigger"))
    if not dead:
        return
    JobRun.objects.filter(pk__in=[pk for pk, _ in dead], outcome=Outcome.RUNNING).update(
        outcome=Outcome.FAILED, finished_at=now, error="abandoned: its worker stopped before the run finished"
    )
    for _, trigger in dead:
        metrics.JOB_RUNS.labels(job, trigger, Outcome.FAILED).inc()
    log.warning("job_runs_abandoned", job=job, run_ids=[pk for pk, _ in dead])


def _claim(start: JobStart, now: datetime) -> JobRun | None:
    """The run row for this start; None when a scheduled tick was already claimed."""
    try:
        with transaction.atomic():
            return JobRun.objects.create(
                job=start.job,
                trigger=start.trigger,
                attempt=start.attempt,
                tick=start.tick,
                outcome=Outcome.RUNNING,
                started_at=now,
                task_id=start.task_id,
                requested_by=start.requested_by,
            )
    except IntegrityError:
        return None


def _finish(run: JobRun, *, outcome: str, started: float, error: str = "", summary: Any = None) -> None:
    elapsed = time.monotonic() - started
    run.outcome = outcome
    run.finished_at = timezone.now()
    run.duration_ms = round(elapsed * 1000)
    run.error = error
    run.summary = summary if isinstance(summary, dict) else ({} if summary is None else {"result": summary})
    run.save(update_fields=["outcome", "finished_at", "duration_ms", "error", "summary"])
    metrics.JOB_RUNS.labels(run.job, run.trigger, outcome).inc()
    metrics.JOB_DURATION.labels(run.job).observe(elapsed)
    if outcome == Outcome.SUCCEEDED:
        metrics.JOB_LAST_SUCCESS.labels(run.job).set(run.finished_at.timestamp())


def _retry_order(run: JobRun, start: JobStart, policy: JobPolicySpec) -> RetryOrder | None:
    if start.attempt >= policy.max_attempts:
        return None
    delay = retry_delay_seconds(policy, start.attempt)
    run.retry_at = timezone.now() + timedelta(seconds=delay)
    run.save(update_fields=["retry_at"])
    metrics.JOB_RETRIES.labels(run.job).inc()
    retry = JobStart(job=start.job, trigger=Trigger.RETRY, attempt=start.attempt + 1, tick=start.tick)
    return RetryOrder(start=retry, delay_seconds=delay)


def job_execute(start: JobStart, body: Callable[[], Any], *, retries: bool = True) -> JobResult:
    """Runs `body` once for `start` under the job's lock and records the run.

    Never raises for the body's failure: the failure is recorded, and the retry (if the policy
    allows one) is returned for the caller to enqueue after the lock is released. A caller that
    will not enqueue one (a run in a management command) passes retries=False: then no retry is
    recorded or counted.
    """
    entry = scheduled_task(start.job)
    # A worker thread may carry the context of its previous task; this run's lines name the job.
    structlog.contextvars.clear_contextvars()
    now = timezone.now()
    if start.trigger == Trigger.SCHEDULED and start.tick is None:
        every, cron = schedule_of(entry)
        start = JobStart(**{**start.__dict__, "tick": tick_of(every, cron, at=now)})
    with job_lock(start.job) as acquired:
        if not acquired:
            return JobResult(_skipped(start, now, "another run of this job holds its lock"))
        _abandon_dead_runs(start.job, now)
        run = _claim(start, now)
        if run is None:
            return JobResult(_skipped(start, now, f"tick {start.tick:%Y-%m-%dT%H:%M:%SZ} already ran"))
        policy = policy_for(start.job)
        log.info("job_started", job=start.job, trigger=start.trigger, attempt=start.attempt, run_id=run.pk)
        started = time.monotonic()
        try:
            summary = body()
        except Exception as exc:
            _finish(run, outcome=Outcome.FAILED, started=started, error=_short_error(exc))
            retry = _retry_order(run, start, policy) if retries else None
            log.error(
                "job_failed",
                job=start.job,
                trigger=start.trigger,
                attempt=start.attempt,
                run_id=run.pk,
                error=run.error,
                retry_in_seconds=round(retry.delay_seconds, 1) if retry else None,
                traceback=traceback.format_exc(limit=8),
            )
            return JobResult(run, retry)
        _finish(run, outcome=Outcome.SUCCEEDED, started=started, summary=summary)
        log.info("job_succeeded", job=start.job, attempt=start.attempt, run_id=run.pk, duration_ms=run.duration_ms)
        return JobResult(run)
