from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from prometheus_client.parser import text_string_to_metric_families

from apps.common.models import Heartbeat
from apps.common.tasks import scheduler_heartbeat
from billing_service.beat_schedule import BEAT_SCHEDULE

pytestmark = pytest.mark.django_db


def test_metrics_are_exported_in_prometheus_text_at_both_paths(client: Client) -> None:
    client.get("/health")
    for path in ("/metrics", "/api/v1/observability/prometheus"):
        response = client.get(path)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        text = response.content.decode()
        assert "django_http_requests_total_by_method_total" in text
        assert "django_http_requests_latency_seconds_by_view_method" in text


def test_the_heartbeat_and_beat_runs_are_exported(client: Client) -> None:
    call_command("install_beat_schedule")
    scheduler_heartbeat.delay()
    heartbeat = Heartbeat.objects.get(name="worker")
    PeriodicTask.objects.filter(name="scheduler-heartbeat").update(last_run_at=heartbeat.last_seen_at)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").content.decode())
        for sample in family.samples
    }
    expected = heartbeat.last_seen_at.timestamp()
    assert samples[("billing_worker_heartbeat_timestamp_seconds", (("name", "worker"),))] == pytest.approx(expected)
    beat_key = (
        "billing_scheduler_task_last_run_timestamp_seconds",
        (("enabled", "true"), ("task", "scheduler-heartbeat")),
    )
    assert samples[beat_key] == pytest.approx(expected)


def test_install_beat_schedule_creates_every_declared_task() -> None:
    call_command("install_beat_schedule")
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {entry.name for entry in BEAT_SCHEDULE} <= names
    task = PeriodicTask.objects.get(name="scheduler-heartbeat")
    assert task.task == "common.scheduler_heartbeat"
    assert task.interval is not None and task.interval.every == 60


def test_install_beat_schedule_keeps_admin_edits_unless_reset(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("install_beat_schedule")
    slower, _ = IntervalSchedule.objects.get_or_create(every=300, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="scheduler-heartbeat").update(interval=slower, enabled=False)

    call_command("install_beat_schedule")
    edited = PeriodicTask.objects.get(name="scheduler-heartbeat")
    assert edited.interval == slower and edited.enabled is False
    assert f"0 created, 0 reset, {len(BEAT_SCHEDULE)} kept" in capsys.readouterr().out

    call_command("install_beat_schedule", reset=True)
    restored = PeriodicTask.objects.get(name="scheduler-heartbeat")
    assert restored.interval is not None and restored.interval.every == 60 and restored.enabled is True


def test_celery_tasks_ack_late_and_are_rejected_when_a_worker_dies() -> None:
    from billing_service.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 4  # safe with acks_late; see settings
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_multiprocess_export_merges_workers_and_keeps_the_database_gauges(
    client: Client, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = client.get("/metrics").content.decode()
    assert "billing_worker_heartbeat_timestamp_seconds" in text
    assert "billing_webhook_ledger_events" in text
