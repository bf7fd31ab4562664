"""periodic_job: the one way to declare a periodic Celery task.

    @periodic_job("webhooks.sweep_ledger")
    def sweep_ledger() -> dict[str, int]:
        return ledger_sweep()

The task name must be a billing_service/beat_schedule.py entry's `task`. Beat sends the task with no
arguments (a `scheduled` start); the admin's "run now" and `manage.py run_job` send a `manual` one;
a failed attempt enqueues a `retry` with the delay its policy gives. Every start goes through
apps.common.jobs.runner.job_execute: the job's lock, the tick claim, the JobRun row and the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from celery import Task, shared_task
from django.utils import timezone

from apps.common.jobs.policy import policy_for
from apps.common.jobs.runner import JobResult, JobStart, Trigger, job_execute
from apps.common.jobs.ticks import schedule_of, tick_of
from billing_service.beat_schedule import JobPolicySpec, scheduled_task, scheduled_task_for

log = structlog.get_logger("billing.jobs")

# The hard limit lets the soft one (raised inside the job as SoftTimeLimitExceeded) be recorded first.
HARD_LIMIT_GRACE_SECONDS = 30


class PeriodicJobTask(Task[Any, Any]):
    """Gives every message of a periodic task its policy's time limits, whoever sends it (beat too)."""

    job_name: str = ""
    job_body: Callable[[], Any]  # set by periodic_job; job_run_inline calls it

    def _policy(self) -> JobPolicySpec:
        try:
            return policy_for(self.job_name)
        except Exception:
            # Beat must still send when the database is briefly away: the declared policy then.
            log.warning("job_policy_unreadable", job=self.job_name)
            return scheduled_task(self.job_name).policy

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:  # type: ignore[override]
        if not kwargs:
            # Beat's send (no arguments): the tick is named now, so that a message redelivered an
            # hour later, or one that waited in a backlog, still claims the tick it was sent for.
            kwargs = scheduled_start_kwargs(self.job_name)
        if "time_limit" not in options and "soft_time_limit" not in options:
            timeout = self._policy().timeout_seconds
            options["soft_time_limit"] = timeout
            options["time_limit"] = timeout + HARD_LIMIT_GRACE_SECONDS
        return super().apply_async(args, kwargs, **options)


def scheduled_start_kwargs(job: str) -> dict[str, Any]:
    """The arguments of a scheduled start sent now: the tick it is for (none if unreadable)."""
    try:
        every, cron = schedule_of(scheduled_task(job))
        return {"tick": tick_of(every, cron, at=timezone.now()).isoformat()}
    except Exception:
        # The database is away: the worker names the tick when it starts the message.
        log.warning("job_tick_unreadable_at_send", job=job)
        return {}


def _start_of(
    task: Task[Any, Any], job: str, trigger: str, attempt: int, tick: str | None, requested_by: str
) -> JobStart:
    return JobStart(
        job=job,
        trigger=trigger,
        attempt=attempt,
        tick=datetime.fromisoformat(tick) if tick else None,
        requested_by=requested_by,
        task_id=str(task.request.id or ""),
    )


def _enqueue_retry(task: Task[Any, Any], result: JobResult) -> None:
    if result.retry is None:
        return
    retry = result.retry.start
    task.apply_async(
        kwargs={
            "trigger": retry.trigger,
            "attempt": retry.attempt,
            "tick": retry.tick.isoformat() if retry.tick else None,
        },
        countdown=result.retry.delay_seconds,
    )


def periodic_job(task_name: str) -> Callable[[Callable[[], Any]], Any]:
    job = scheduled_task_for(task_name).name

    def decorate(body: Callable[[], Any]) -> Any:
        @shared_task(name=task_name, base=PeriodicJobTask, bind=True, job_name=job)
        def run(
            self: PeriodicJobTask,
            trigger: str = Trigger.SCHEDULED,
            attempt: int = 1,
            tick: str | None = None,
            requested_by: str = "",
        ) -> dict[str, Any]:
            # self.job_body, not `body`: a test may swap the body of a real job.
            result = job_execute(_start_of(self, job, trigger, attempt, tick, requested_by), self.job_body)
            _enqueue_retry(self, result)
            return {"run_id": result.run.pk, "outcome": str(result.run.outcome), "summary": result.run.summary}

        run.__doc__ = body.__doc__
        run.job_body = body  # for job_run_inline
        return run

    return decorate


def _registered_task(job: str) -> PeriodicJobTask:
    """`job`'s task in this process's registry.

    Celery imports the apps' tasks modules when a worker starts; a web process or a management
    command knows only the tasks some other import pulled in, so those modules are imported here.
    """
    from billing_service.celery import app

    name = scheduled_task(job).task
    if name not in app.tasks:
        app.loader.import_default_modules()
    task = app.tasks[name]
    assert isinstance(task, PeriodicJobTask), name
    return task


def job_run_now(job: str, *, requested_by: str) -> str:
    """Sends `job` to a worker as a manual start (through the same lock as beat); its task id."""
    task = _registered_task(job)
    sent = task.apply_async(kwargs={"trigger": Trigger.MANUAL, "requested_by": requested_by})
    return str(sent.id)


def job_run_inline(job: str, *, requested_by: str) -> JobResult:
    """Runs `job` in this process as a manual start (management commands); a retry is not enqueued."""
    body = _registered_task(job).job_body
    return job_execute(JobStart(job=job, trigger=Trigger.MANUAL, requested_by=requested_by), body, retries=False)
