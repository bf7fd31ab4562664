"""GET /api/v1/observability/scheduler: every periodic job, and overdue when it has not succeeded
within twice its interval (apps/common/jobs/health.py has the rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from apps.common.jobs.health import scheduler_health
from apps.common.jobs.lock import job_lock
from apps.common.models import JobPolicy, JobRun
from apps.common.query import instant_text
from billing_service.beat_schedule import BEAT_SCHEDULE, scheduled_task
from tests.conftest import Tenant, make_tenant
from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/observability/scheduler"
NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
JOB_FIELDS = {
    "name",
    "task",
    "description",
    "installed",
    "enabled",
    "schedule",
    "interval_seconds",
    "policy",
    "last_sent_at",
    "last_started_at",
    "last_finished_at",
    "last_succeeded_at",
    "last_error",
    "running",
    "running_since",
    "lock_held",
    "runs_24h",
    "next_due_at",
    "overdue_after",
    "overdue",
}


@pytest.fixture
def ops(db: None) -> Tenant:
    return make_tenant("opsdesk", scopes=["ops"])


def _install_at(when: datetime) -> None:
    with time_machine.travel(when, tick=False):
        call_command("install_beat_schedule")


def _succeeded(job: str, finished_at: datetime, **fields: Any) -> JobRun:
    return JobRunFactory.create(
        job=job, started_at=finished_at - timedelta(seconds=1), finished_at=finished_at, **fields
    )


def _report(tenant: Tenant) -> dict[str, Any]:
    response = tenant.client().get(URL)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def _jobs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["name"]: job for job in report["jobs"]}


def test_it_lists_every_declared_job_with_its_schedule_policy_and_runs(ops: Tenant) -> None:
    _install_at(NOW - timedelta(seconds=100))
    sweep = "sweep-webhook-ledger"
    JobRunFactory.create(
        job=sweep,
        outcome="failed",
        error="RuntimeError: boom",
        started_at=NOW - timedelta(seconds=91),
        finished_at=NOW - timedelta(seconds=90),
    )
    _succeeded(sweep, NOW - timedelta(seconds=30))
    # The ledger drain runs every 30 s: 100 s after install with no success, it would be overdue.
    _succeeded("drain-webhook-ledger", NOW - timedelta(seconds=5))
    _succeeded("deliver-notifications", NOW - timedelta(seconds=5))
    # A skipped start ran nothing: it is counted, but it is not the last start.
    JobRunFactory.create(job=sweep, outcome="skipped", started_at=NOW - timedelta(seconds=10))
    # Older than a day: out of the counts, still on record.
    _succeeded(sweep, NOW - timedelta(hours=25), trigger="manual")
    PeriodicTask.objects.filter(name=sweep).update(last_run_at=NOW - timedelta(seconds=20))

    with time_machine.travel(NOW, tick=False):
        report = _report(ops)

    assert report["checked_at"] == "2026-11-28T12:00:30Z"
    assert [job["name"] for job in report["jobs"]] == [entry.name for entry in BEAT_SCHEDULE]
    for job in report["jobs"]:
        assert set(job) == JOB_FIELDS, job["name"]
        assert job["installed"] is True and job["enabled"] is True
        assert set(job["policy"]) == {
            "max_attempts",
            "base_backoff_seconds",
            "backoff_multiplier",
            "max_backoff_seconds",
            "jitter_seconds",
            "timeout_seconds",
        }
    jobs = _jobs(report)
    assert jobs["scheduler-heartbeat"]["schedule"] == {"every_seconds": 60}
    assert jobs["scheduler-heartbeat"]["policy"]["max_attempts"] == 1
    purge = jobs["purge-idempotency-records"]
    assert purge["schedule"] == {"crontab": "17 3 * * *", "timezone": "UTC"}
    assert purge["interval_seconds"] == 86400
    assert purge["next_due_at"] == "2026-11-29T03:17:00Z"
    assert purge["last_succeeded_at"] is None and purge["last_error"] is None
    assert purge["runs_24h"] == {"running": 0, "succeeded": 0, "failed": 0, "skipped": 0}

    assert jobs[sweep] == {
        "name": sweep,
        "task": "webhooks.sweep_ledger",
        "description": scheduled_task(sweep).description,
        "installed": True,
        "enabled": True,
        "schedule": {"every_seconds": 60},
        "interval_seconds": 60,
        "policy": {
            "max_attempts": 2,
            "base_backoff_seconds": 10,
            "backoff_multiplier": 2.0,
            "max_backoff_seconds": 20,
            "jitter_seconds": 5,
            "timeout_seconds": 240,
        },
        "last_sent_at": "2026-11-28T12:00:10Z",
        "last_started_at": "2026-11-28T11:59:59Z",
        "last_finished_at": "2026-11-28T12:00:00Z",
        "last_succeeded_at": "2026-11-28T12:00:00Z",
        "last_error": {
            "at": "2026-11-28T11:59:00Z",
            "error": "RuntimeError: boom",
            "trigger": "scheduled",
            "attempt": 1,
        },
        "running": False,
        "running_since": None,
        "lock_held": False,
        "runs_24h": {"running": 0, "succeeded": 1, "failed": 1, "skipped": 1},
        # Beat sends it an interval after its last send.
        "next_due_at": "2026-11-28T12:01:10Z",
        "overdue_after": "2026-11-28T12:02:00Z",
        "overdue": False,
    }
    # Installed 100 s ago: the jobs that never ran are not late yet (2 x 60 s is the shortest).
    assert report["healthy"] is True and report["overdue"] == []


def test_a_job_is_overdue_once_its_last_success_is_older_than_twice_its_interval(ops: Tenant) -> None:
    _install_at(NOW - timedelta(days=3))
    late = ("scheduler-heartbeat", "purge-idempotency-records")
    # The other jobs succeeded just now, so that only these two can be late.
    for entry in BEAT_SCHEDULE:
        if entry.name not in late:
            _succeeded(entry.name, NOW)
    heartbeat_success = NOW - timedelta(seconds=120)  # exactly twice its 60 s interval before NOW
    _succeeded("scheduler-heartbeat", heartbeat_success)
    _succeeded("purge-idempotency-records", NOW - timedelta(days=2, seconds=1))  # daily: two days and a second

    with time_machine.travel(NOW, tick=False) as traveller:
        jobs = _jobs(report := _report(ops))
        assert jobs["scheduler-heartbeat"]["overdue"] is False  # just inside
        assert jobs["scheduler-heartbeat"]["overdue_after"] == instant_text(NOW)
        assert jobs["purge-idempotency-records"]["overdue"] is True
        assert report["overdue"] == ["purge-idempotency-records"] and report["healthy"] is False

        traveller.move_to(NOW + timedelta(seconds=1))
        report = _report(ops)
        assert report["overdue"] == ["scheduler-heartbeat", "purge-idempotency-records"]
        assert _jobs(report)["scheduler-heartbeat"]["last_succeeded_at"] == instant_text(heartbeat_success)

        # A new success clears it.
        _succeeded("scheduler-heartbeat", NOW + timedelta(seconds=1))
        assert _report(ops)["overdue"] == ["purge-idempotency-records"]


def test_a_disabled_job_is_never_overdue(ops: Tenant) -> None:
    _install_at(NOW - timedelta(days=30))
    _succeeded("sweep-stale-runs", NOW - timedelta(days=20))
    # As the admin does it: through save() (which also clears beat's last_run_at).
    for name in ("sweep-stale-runs", "sweep-webhook-ledger"):  # one with an old success, one with none
        task = PeriodicTask.objects.get(name=name)
        task.enabled = False
        task.save()

    with time_machine.travel(NOW, tick=False):
        jobs = _jobs(report := _report(ops))

    for name in ("sweep-stale-runs", "sweep-webhook-ledger"):
        assert jobs[name]["enabled"] is False and jobs[name]["installed"] is True
        assert jobs[name]["overdue"] is False
        assert jobs[name]["next_due_at"] is None and jobs[name]["overdue_after"] is None
    assert "sweep-stale-runs" not in report["overdue"] and "sweep-webhook-ledger" not in report["overdue"]
    # The enabled jobs that never succeeded in 30 days are.
    assert "scheduler-heartbeat" in report["overdue"]


def test_a_job_that_never_succeeded_is_overdue_twice_its_interval_after_it_was_first_known(ops: Tenant) -> None:
    _install_at(NOW - timedelta(seconds=119))
    job = "scheduler-heartbeat"
    JobRunFactory.create(
        job=job, outcome="failed", started_at=NOW - timedelta(seconds=61), finished_at=NOW - timedelta(seconds=60)
    )
    with time_machine.travel(NOW, tick=False) as traveller:
        heartbeat = _jobs(_report(ops))[job]
        assert heartbeat["last_succeeded_at"] is None and heartbeat["last_error"] is not None
        assert heartbeat["overdue_after"] == instant_text(NOW + timedelta(seconds=1))
        assert heartbeat["overdue"] is False

        # Beat saving the row as it sends (it changes date_changed) does not make the job look new.
        traveller.move_to(NOW + timedelta(seconds=2))
        PeriodicTask.objects.get(name=job).save()
        assert _jobs(_report(ops))[job]["overdue"] is True


def test_the_policy_and_the_schedule_shown_are_the_admins_edits(ops: Tenant) -> None:
    _install_at(NOW - timedelta(days=1))
    policy = JobPolicy.objects.get(job="sweep-stale-runs")
    policy.max_attempts = 5
    policy.backoff_multiplier = Decimal("1.5")
    policy.max_backoff_seconds = 120
    policy.full_clean()
    policy.save()
    _succeeded("sweep-stale-runs", NOW - timedelta(seconds=700))

    with time_machine.travel(NOW, tick=False):
        stale = _jobs(_report(ops))["sweep-stale-runs"]
        assert stale["policy"] == {
            "max_attempts": 5,
            "base_backoff_seconds": 30,
            "backoff_multiplier": 1.5,
            "max_backoff_seconds": 120,
            "jitter_seconds": 10,
            "timeout_seconds": 240,
        }
        assert stale["overdue"] is True  # 700 s > 2 x 300 s

        # An operator slows it to every 10 minutes: 700 s is now within twice the interval.
        task = PeriodicTask.objects.get(name="sweep-stale-runs")
        task.interval, _ = IntervalSchedule.objects.get_or_create(every=600, period=IntervalSchedule.SECONDS)
        task.save()
        stale = _jobs(_report(ops))["sweep-stale-runs"]
        assert stale["schedule"] == {"every_seconds": 600} and stale["interval_seconds"] == 600
        assert stale["overdue"] is False


@pytest.mark.requires_postgres
def test_it_shows_a_running_run_and_a_held_lock(ops: Tenant) -> None:
    _install_at(NOW - timedelta(minutes=1))
    JobRunFactory.create(job="purge-job-runs", outcome="running", started_at=NOW - timedelta(seconds=5))
    with time_machine.travel(NOW, tick=False), job_lock("purge-job-runs") as acquired:
        assert acquired
        purge = _jobs(_report(ops))["purge-job-runs"]
    assert purge["running"] is True and purge["running_since"] == "2026-11-28T12:00:25Z"
    assert purge["lock_held"] is True
    assert purge["runs_24h"]["running"] == 1
    assert purge["last_started_at"] == "2026-11-28T12:00:25Z" and purge["last_finished_at"] is None


def test_before_install_every_job_is_shown_as_declared_and_not_overdue(ops: Tenant) -> None:
    report = _report(ops)
    for job, entry in zip(report["jobs"], BEAT_SCHEDULE, strict=True):
        assert job["installed"] is False and job["enabled"] is False and job["overdue"] is False
        assert job["policy"]["max_attempts"] == entry.policy.max_attempts
        assert job["next_due_at"] is None
    assert report["healthy"] is True


def test_the_number_of_queries_does_not_grow_with_the_runs() -> None:
    _install_at(NOW - timedelta(days=1))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured, time_machine.travel(NOW, tick=False):
            scheduler_health()
        return len(captured)

    def runs(count: int) -> None:
        for entry in BEAT_SCHEDULE:
            for n in range(count):
                _succeeded(entry.name, NOW - timedelta(minutes=n))
                JobRunFactory.create(
                    job=entry.name, outcome="failed", started_at=NOW - timedelta(minutes=n, seconds=30)
                )

    runs(1)
    few = queries()
    runs(20)
    assert queries() == few
    # PeriodicTask, JobPolicy change times, the run aggregate, the last errors; per job its policy and lock.
    assert few <= 4 + 2 * len(BEAT_SCHEDULE)


def test_it_needs_the_ops_scope_and_a_key(db: None) -> None:
    reader = make_tenant("reader", scopes=["billing:read", "entitlements:read"])
    response = reader.client().get(URL)
    assert response.status_code == 403
    assert response.json() == {"detail": "This API key lacks the scope(s): ops."}

    anonymous = APIClient().get(URL)
    assert anonymous.status_code == 401
    assert "detail" in anonymous.json()
