"""Long runs never stay `running`: the stale-run sweep fails a run whose worker died, and every
periodic job of beat can also be run by hand, printing a summary."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import yaml
from celery import current_app
from django.core.management import call_command
from django.utils import timezone

from apps.catalog.models import CatalogSyncRun
from apps.catalog.tasks import catalog_sync_run_task
from apps.common.models import IdempotencyRecord
from apps.common.runs import stale_runs_sweep
from apps.common.tasks import sweep_stale_runs
from apps.projects.models import Project
from apps.webhooks.models import ReplayRun
from apps.webhooks.tasks import replay_run_task
from billing_service.beat_schedule import BEAT_SCHEDULE
from tests.conftest import Tenant
from tests.factories import CatalogSyncRunFactory, IdempotencyRecordFactory, ReplayRunFactory

pytestmark = pytest.mark.django_db


def _killed_replay(project: Project, *, age: timedelta) -> ReplayRun:
    """A run as a SIGKILLed worker leaves it: `running`, started `age` ago, never finished."""
    run = ReplayRunFactory.create(
        project=project,
        requested_by="ops",
        params={},
        status=ReplayRun.Status.RUNNING,
        counts={"selected": 3},
        finished_at=None,
    )
    ReplayRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - age)
    return run


def _killed_sync(project: Project, *, age: timedelta) -> CatalogSyncRun:
    run = CatalogSyncRunFactory.create(
        project=project, status=CatalogSyncRun.Status.RUNNING, counts={}, finished_at=None
    )
    CatalogSyncRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - age)
    return run


def test_a_run_left_running_by_a_killed_worker_is_marked_failed_by_the_sweep(alice: Tenant, settings: Any) -> None:
    settings.RUN_STALE_AFTER_SECONDS = 900
    killed = _killed_replay(alice.project, age=timedelta(minutes=16))
    killed_sync = _killed_sync(alice.project, age=timedelta(hours=2))
    busy = _killed_replay(alice.project, age=timedelta(minutes=14))  # still within the threshold
    busy_sync = _killed_sync(alice.project, age=timedelta(seconds=5))

    assert stale_runs_sweep() == {
        "webhooks.ReplayRun": 1,
        "catalog.CatalogSyncRun": 1,
        "reconciliation.ReconciliationRun": 0,
    }

    for run in (killed, killed_sync):
        run.refresh_from_db()
        assert run.status == "failed"
        assert run.error.startswith("Abandoned: still running after 900 s (RUN_STALE_AFTER_SECONDS)")
        assert "marked failed by the stale-run sweep" in run.error
        assert run.finished_at is not None
    for fresh in (busy, busy_sync):
        fresh.refresh_from_db()
        assert fresh.status == "running" and fresh.error == ""
    # Seen through the API as the caller polls it.
    body = alice.client().get(f"/api/v1/billing/replays/{killed.pk}").json()
    assert body["status"] == "failed" and "stale-run sweep" in body["error"]
    # A second sweep finds nothing; the finished runs keep their outcome.
    assert stale_runs_sweep() == {
        "webhooks.ReplayRun": 0,
        "catalog.CatalogSyncRun": 0,
        "reconciliation.ReconciliationRun": 0,
    }


def test_a_finished_run_is_never_swept(alice: Tenant) -> None:
    run = _killed_replay(alice.project, age=timedelta(days=1))
    ReplayRun.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())
    assert stale_runs_sweep()["webhooks.ReplayRun"] == 0
    run.refresh_from_db()
    assert run.status == "succeeded" and run.error == ""


def test_a_swept_run_reaching_a_late_worker_is_not_started(alice: Tenant) -> None:
    run = _killed_replay(alice.project, age=timedelta(days=1))
    sync = _killed_sync(alice.project, age=timedelta(days=1))
    stale_runs_sweep()
    # The message of a run no worker picked up in time arrives after all: nothing runs.
    assert replay_run_task.delay(run.pk).get() == "failed"
    assert catalog_sync_run_task.delay(sync.pk).get() == "failed"
    run.refresh_from_db()
    assert run.counts == {"selected": 3} and run.results == []


def test_the_sweep_is_declared_in_beat_and_the_task_runs_it(alice: Tenant, settings: Any) -> None:
    entry = next(e for e in BEAT_SCHEDULE if e.task == "common.sweep_stale_runs")
    assert entry.every_seconds is not None and entry.every_seconds < settings.RUN_STALE_AFTER_SECONDS
    assert settings.RUN_STALE_AFTER_SECONDS > settings.CELERY_TASK_TIME_LIMIT
    _killed_replay(alice.project, age=timedelta(days=1))
    assert sweep_stale_runs.delay().get()["summary"] == {
        "webhooks.ReplayRun": 1,
        "catalog.CatalogSyncRun": 0,
        "reconciliation.ReconciliationRun": 0,
    }


def test_run_tasks_are_acknowledged_on_receipt_and_never_retried() -> None:
    # A killed worker's run must not be redelivered and restarted: the sweep fails it instead.
    for name in ("webhooks.replay_run", "catalog.sync_run"):
        task = current_app.tasks[name]
        assert task.acks_late is False, name
        assert task.reject_on_worker_lost is False, name
        assert not getattr(task, "autoretry_for", ()), name


def test_every_periodic_job_has_a_command(alice: Tenant) -> None:
    # Every job runs by hand through `run_job NAME`; the older ones keep a command of their own.
    by_task = {
        "common.purge_idempotency_records": "purge_idempotency",
        "webhooks.sweep_ledger": "sweep_ledger",
        "common.sweep_stale_runs": "sweep_stale_runs",
    }
    assert set(by_task) <= {entry.task for entry in BEAT_SCHEDULE}
    for command in by_task.values():
        out = StringIO()
        call_command(command, stdout=out)
        assert out.getvalue().strip(), command
    for entry in BEAT_SCHEDULE:
        out = StringIO()
        call_command("run_job", entry.name, stdout=out)
        assert f"{entry.name}: succeeded" in out.getvalue(), entry.name


def test_sweep_stale_runs_prints_what_it_failed(alice: Tenant) -> None:
    _killed_replay(alice.project, age=timedelta(days=1))
    out = StringIO()
    call_command("sweep_stale_runs", stdout=out)
    text = out.getvalue()
    assert "webhooks.ReplayRun: 1 marked failed" in text
    assert "catalog.CatalogSyncRun: 0 marked failed" in text
    assert "stale-run sweep: 1 runs marked failed" in text


def test_purge_idempotency_prints_how_many_it_deleted(alice: Tenant) -> None:
    old = IdempotencyRecordFactory.create(project=alice.project, key="old", method_path="POST /x", request_hash="h")
    IdempotencyRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    IdempotencyRecordFactory.create(project=alice.project, key="new", method_path="POST /x", request_hash="h")
    out = StringIO()
    call_command("purge_idempotency", stdout=out)
    assert "idempotency purge: 1 records deleted" in out.getvalue()
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_the_schema_declares_the_202s_and_their_location(client: Any) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path in ("/api/v1/billing/replays", "/api/v1/catalog/sync"):
        answers = schema["paths"][path]["post"]["responses"]
        assert "202" in answers and "200" not in answers and "201" not in answers, path
        assert "Location" in answers["202"]["headers"], path
        assert answers["202"]["content"]["application/json"]["examples"], path
    assert "get" in schema["paths"]["/api/v1/catalog/sync/{run_id}"]
