"""The periodic-job mechanism: policy, retries with backoff and jitter, one run per tick, the lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.common.jobs.lock import job_lock, job_lock_held
from apps.common.jobs.policy import backoff_seconds, retry_delay_seconds
from apps.common.jobs.purge import job_runs_purge
from apps.common.jobs.runner import JobStart, job_execute
from apps.common.jobs.ticks import tick_of
from apps.common.models import Heartbeat, JobPolicy, JobRun
from apps.common.tasks import purge_job_runs, scheduler_heartbeat
from billing_service.beat_schedule import BEAT_SCHEDULE, JobPolicySpec
from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db

JOB = "purge-job-runs"
NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def flaky_body() -> Iterator[list[int]]:
    """Swaps purge-job-runs' body for one that fails as many times as the list says, then succeeds."""
    calls: list[int] = []
    failures = [0]

    def body() -> dict[str, int]:
        calls.append(1)
        if len(calls) <= failures[0]:
            raise RuntimeError(f"boom {len(calls)}")
        return {"calls": len(calls)}

    original = purge_job_runs.job_body
    purge_job_runs.job_body = body
    yield failures
    purge_job_runs.job_body = original


def _policy(**fields: Any) -> None:
    call_command("install_beat_schedule")
    JobPolicy.objects.filter(job=JOB).update(**fields)


def test_backoff_is_min_of_base_times_multiplier_power_and_max() -> None:
    policy = JobPolicySpec(
        max_attempts=6, base_backoff_seconds=10, backoff_multiplier=Decimal("1.5"), max_backoff_seconds=30
    )
    assert [backoff_seconds(policy, n) for n in range(1, 6)] == [10, 15, 23, 30, 30]  # 22.5 rounds up
    for n in range(1, 6):
        delay = retry_delay_seconds(policy, n)
        assert backoff_seconds(policy, n) <= delay <= backoff_seconds(policy, n) + policy.jitter_seconds


@time_machine.travel(NOW, tick=False)
def test_a_job_that_fails_twice_then_succeeds_is_retried_inside_backoff_plus_jitter(flaky_body: list[int]) -> None:
    _policy(max_attempts=5, base_backoff_seconds=20, backoff_multiplier=Decimal("3"), jitter_seconds=7)
    flaky_body[0] = 2

    purge_job_runs.delay()

    runs = list(JobRun.objects.filter(job=JOB).order_by("attempt"))
    assert [(r.trigger, r.attempt, r.outcome) for r in runs] == [
        ("scheduled", 1, "failed"),
        ("retry", 2, "failed"),
        ("retry", 3, "succeeded"),
    ]
    assert runs[0].error == "RuntimeError: boom 1"
    for run, backoff in zip(runs[:2], (20, 60), strict=True):  # 20 * 3**0, 20 * 3**1
        assert run.retry_at is not None
        eta = (run.retry_at - NOW).total_seconds()
        assert backoff <= eta <= backoff + 7
    assert runs[2].retry_at is None
    assert runs[2].summary == {"calls": 3}
    # The retries belong to the tick of the scheduled start.
    assert {r.tick for r in runs} == {tick_of(None, "41 3 * * *", at=NOW)}


def test_a_job_that_always_fails_stops_at_max_attempts_recorded_failed(flaky_body: list[int]) -> None:
    _policy(max_attempts=3, base_backoff_seconds=1, max_backoff_seconds=1, jitter_seconds=0)
    flaky_body[0] = 99

    purge_job_runs.delay()

    runs = list(JobRun.objects.filter(job=JOB).order_by("attempt"))
    assert [(r.attempt, r.outcome) for r in runs] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert runs[-1].retry_at is None  # no fourth attempt scheduled
    assert runs[-1].error == "RuntimeError: boom 3"


def test_a_second_start_of_the_same_tick_is_skipped_and_the_next_tick_runs() -> None:
    call_command("install_beat_schedule")
    with time_machine.travel(datetime(2026, 11, 28, 12, 0, 1, tzinfo=UTC), tick=False):
        scheduler_heartbeat.delay()
    with time_machine.travel(datetime(2026, 11, 28, 12, 0, 40, tzinfo=UTC), tick=False):
        scheduler_heartbeat.delay()  # a second beat, 39 s later, same minute slot
    with time_machine.travel(datetime(2026, 11, 28, 12, 1, 2, tzinfo=UTC), tick=False):
        scheduler_heartbeat.delay()

    runs = list(JobRun.objects.filter(job="scheduler-heartbeat").order_by("started_at"))
    assert [r.outcome for r in runs] == ["succeeded", "skipped", "succeeded"]
    assert "already ran" in runs[1].error
    assert Heartbeat.objects.get(name="worker").beats == 2


def test_manual_runs_do_not_claim_a_tick() -> None:
    call_command("install_beat_schedule")
    with time_machine.travel(NOW, tick=False):
        scheduler_heartbeat.delay()
        scheduler_heartbeat.delay(trigger="manual", requested_by="admin:ops")
    assert sorted(JobRun.objects.values_list("trigger", "outcome")) == [
        ("manual", "succeeded"),
        ("scheduled", "succeeded"),
    ]


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_start_while_another_holds_the_lock_is_skipped() -> None:
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        try:
            with job_lock("scheduler-heartbeat") as acquired:
                assert acquired
                held.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        assert job_lock_held("scheduler-heartbeat")
        result = job_execute(JobStart(job="scheduler-heartbeat", trigger="manual"), lambda: {"ran": 1})
    finally:
        release.set()
        thread.join()
    assert result.run.outcome == "skipped"
    assert result.run.error == "another run of this job holds its lock"
    assert not job_lock_held("scheduler-heartbeat")


def test_runs_left_running_by_a_dead_worker_are_marked_failed_by_the_next_start() -> None:
    dead = JobRunFactory.create(job="scheduler-heartbeat", outcome="running")
    job_execute(JobStart(job="scheduler-heartbeat", trigger="manual"), lambda: None)
    dead.refresh_from_db()
    assert dead.outcome == "failed"
    assert dead.error.startswith("abandoned")


def test_crontab_ticks_are_the_latest_occurrence_and_interval_ticks_the_slot() -> None:
    at = datetime(2026, 11, 28, 5, 0, 0, tzinfo=UTC)
    assert tick_of(None, "17 3 * * *", at=at) == datetime(2026, 11, 28, 3, 17, tzinfo=UTC)
    assert tick_of(None, "17 3 * * *", at=datetime(2026, 11, 28, 3, 17, tzinfo=UTC)) == datetime(
        2026, 11, 28, 3, 17, tzinfo=UTC
    )
    assert tick_of(None, "0 9,17 * * *", at=at) == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert tick_of(None, "0 4 * * 0", at=at) == datetime(2026, 11, 22, 4, 0, tzinfo=UTC)  # a Sunday
    assert tick_of(300, None, at=datetime(2026, 11, 28, 5, 4, 59, tzinfo=UTC)) == at


def test_the_admins_schedule_decides_the_tick() -> None:
    call_command("install_beat_schedule")
    every_two_minutes, _ = IntervalSchedule.objects.get_or_create(every=120, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="scheduler-heartbeat").update(interval=every_two_minutes)
    with time_machine.travel(datetime(2026, 11, 28, 12, 0, 1, tzinfo=UTC), tick=False):
        scheduler_heartbeat.delay()
    with time_machine.travel(datetime(2026, 11, 28, 12, 1, 5, tzinfo=UTC), tick=False):
        scheduler_heartbeat.delay()  # the next minute, but the same two-minute slot
    assert list(JobRun.objects.order_by("started_at").values_list("outcome", flat=True)) == ["succeeded", "skipped"]


def test_install_writes_declared_policies_and_keeps_admin_edits_unless_reset() -> None:
    call_command("install_beat_schedule")
    assert set(JobPolicy.objects.values_list("job", flat=True)) == {entry.name for entry in BEAT_SCHEDULE}
    heartbeat = JobPolicy.objects.get(job="scheduler-heartbeat")
    assert heartbeat.max_attempts == 1
    JobPolicy.objects.filter(job="scheduler-heartbeat").update(max_attempts=4)

    call_command("install_beat_schedule")
    assert JobPolicy.objects.get(job="scheduler-heartbeat").max_attempts == 4

    call_command("install_beat_schedule", "--reset")
    assert JobPolicy.objects.get(job="scheduler-heartbeat").max_attempts == 1


def test_the_policys_timeout_rides_on_every_message(monkeypatch: pytest.MonkeyPatch) -> None:
    _policy(timeout_seconds=77)
    sent: dict[str, Any] = {}

    def capture(self: Any, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.update(options)

    from celery import Task

    monkeypatch.setattr(Task, "apply_async", capture)
    purge_job_runs.apply_async()
    assert sent["soft_time_limit"] == 77
    assert sent["time_limit"] == 77 + 30


def test_purge_deletes_runs_older_than_the_retention(settings: Any) -> None:
    settings.JOB_RUN_RETENTION_DAYS = 30
    old = JobRunFactory.create(started_at=datetime.now(UTC) - timedelta(days=31))
    recent = JobRunFactory.create(started_at=datetime.now(UTC) - timedelta(days=29))
    assert job_runs_purge() == 1
    assert list(JobRun.objects.values_list("pk", flat=True)) == [recent.pk]
    assert old.pk != recent.pk


def test_run_job_command_goes_through_the_run_history(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("run_job", "scheduler-heartbeat")
    run = JobRun.objects.get()
    assert (run.trigger, run.outcome) == ("manual", "succeeded")
    assert run.requested_by.startswith("manage.py run_job")
    assert '"beats": 1' in capsys.readouterr().out
    with pytest.raises(CommandError, match="unknown job"):
        call_command("run_job", "nope")
