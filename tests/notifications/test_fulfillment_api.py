"""GET /api/v1/fulfillment/health and /metrics (scope ops), the tasks, and the Prometheus series."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from prometheus_client import REGISTRY

from apps.common.models import JobRun
from apps.entitlements import tasks
from apps.entitlements.notifications import worker
from apps.entitlements.notifications.models import Delivery, NotificationEndpoint
from apps.projects.models import Scope
from tests.conftest import Tenant, make_tenant
from tests.notifications.receiver import FAIL, ScriptedReceiver, endpoint_for, notifications_queue

pytestmark = pytest.mark.django_db

HEALTH = "/api/v1/fulfillment/health"
METRICS = "/api/v1/fulfillment/metrics"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HEALTH_FIELDS = {
    "worker_enabled",
    "running",
    "poll_interval_seconds",
    "batch_size",
    "latest_run",
    "last_error",
    "last_error_at",
    "backlog",
    "backlog_held",
    "oldest_pending_age_seconds",
    "disabled_endpoints",
}
METRICS_FIELDS = {
    "delivered",
    "failed",
    "retried",
    "loop_errors",
    "last_delivered_at",
    "last_failed_at",
    "last_run_started_at",
    "last_run_finished_at",
}


@pytest.fixture
def ops(db: None) -> Tenant:
    return make_tenant("opsproj", scopes=[Scope.OPS])


@pytest.fixture
def receiver() -> Iterator[ScriptedReceiver]:
    with ScriptedReceiver() as running:
        yield running


def _get(tenant: Tenant, path: str) -> Any:
    response = tenant.client().get(path)
    assert response.status_code == 200, response.content
    return response.json()


def test_both_need_an_ops_key(alice: Tenant) -> None:
    reader = make_tenant("reader", scopes=[Scope.BILLING_READ, Scope.ENTITLEMENTS_READ])
    for path in (HEALTH, METRICS):
        assert Client().get(path).status_code == 401
        response = reader.client().get(path)
        assert response.status_code == 403
        assert "ops" in response.json()["detail"]


def test_health_before_any_run(ops: Tenant, alice: Tenant, settings: Any) -> None:
    settings.FULFILLMENT_POLL_INTERVAL_SECONDS = 15
    settings.FULFILLMENT_BATCH_SIZE = 40
    with time_machine.travel(T0, tick=False):
        NotificationEndpoint.objects.create(app=alice.app, url="http://127.0.0.1:9/never")
        notifications_queue(alice, "u1", "u2")
    with time_machine.travel(T0 + timedelta(seconds=90), tick=False):
        report = _get(ops, HEALTH)
    assert set(report) == HEALTH_FIELDS
    assert report == {
        "worker_enabled": True,
        "running": False,  # no run on record: no worker, or beat is not sending the poll
        "poll_interval_seconds": 15,
        "batch_size": 40,
        "latest_run": None,
        "last_error": None,
        "last_error_at": None,
        "backlog": 2,
        "backlog_held": 0,
        "oldest_pending_age_seconds": 90,
        "disabled_endpoints": 0,
    }


def test_beat_polls_make_the_worker_running_until_three_intervals_pass_without_one(
    ops: Tenant, alice: Tenant, receiver: ScriptedReceiver
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        endpoint_for(alice, receiver)
        notifications_queue(alice, "u1")
        result = tasks.deliver_scheduled.apply().get()  # beat's send, eager
        assert result["outcome"] == "succeeded" and result["summary"]["delivered"] == 1
        report = _get(ops, HEALTH)
        assert report["running"] is True
        assert report["latest_run"] == {
            "started_at": "2026-11-28T12:00:00Z",
            "finished_at": "2026-11-28T12:00:00Z",
            "status": "succeeded",
        }
        assert (report["backlog"], report["oldest_pending_age_seconds"]) == (0, None)

        clock.shift(timedelta(seconds=3 * 10 - 1))
        assert _get(ops, HEALTH)["running"] is True
        clock.shift(timedelta(seconds=2))
        assert _get(ops, HEALTH)["running"] is False
    assert len(receiver.received) == 1


def test_a_failed_woken_run_is_the_last_error_and_a_loop_error(
    ops: Tenant, alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database_away(**kwargs: Any) -> Any:
        raise RuntimeError("connection to the database was lost")

    monkeypatch.setattr(worker, "deliveries_claim", database_away)
    loop_errors_before = REGISTRY.get_sample_value("billing_fulfillment_loop_errors_total") or 0.0

    assert tasks.deliver.apply().get() == {"enabled": True, "error": True}  # the wake-up's task never raises

    run = JobRun.objects.get(job="deliver-notifications")
    assert run.outcome == JobRun.Outcome.FAILED and "wake-up" in run.requested_by
    report = _get(ops, HEALTH)
    assert report["last_error"] == "RuntimeError: connection to the database was lost"
    assert report["latest_run"]["status"] == "failed"
    assert _get(ops, METRICS)["loop_errors"] == 1
    assert REGISTRY.get_sample_value("billing_fulfillment_loop_errors_total") == loop_errors_before + 1


def test_switched_off_the_tasks_do_nothing_and_health_says_not_running(
    ops: Tenant, alice: Tenant, receiver: ScriptedReceiver, settings: Any
) -> None:
    settings.FULFILLMENT_WORKER_ENABLED = False
    endpoint_for(alice, receiver)
    notifications_queue(alice, "u1")
    assert tasks.deliver.apply().get() == {**worker.RunSummary(enabled=False).as_dict()}
    assert tasks.deliver_scheduled.apply().get()["summary"]["enabled"] is False
    assert receiver.received == []
    assert Delivery.objects.get().status == Delivery.Status.PENDING
    report = _get(ops, HEALTH)
    assert report["worker_enabled"] is False and report["running"] is False and report["backlog"] == 1


def test_metrics_count_from_the_database(ops: Tenant, alice: Tenant, settings: Any) -> None:
    # A first retry (30 s + up to 30 s of jitter) fits in 90 s; a second one (60 s + jitter) never does.
    settings.FULFILLMENT_RETRY_WINDOW_SECONDS = 90
    empty = _get(ops, METRICS)
    assert set(empty) == METRICS_FIELDS
    assert empty == dict.fromkeys(METRICS_FIELDS) | {"delivered": 0, "failed": 0, "retried": 0, "loop_errors": 0}

    with ScriptedReceiver(FAIL, FAIL, FAIL, FAIL) as receiver, time_machine.travel(T0, tick=False) as clock:
        endpoint_for(alice, receiver)
        notifications_queue(alice, "u1", "u2", "u3")
        call_command("deliver_notifications")  # three 500s: three retries scheduled
        clock.shift(timedelta(seconds=61))
        call_command("deliver_notifications")  # one more 500 (given up), two 200s
    assert len(receiver.received) == 6
    report = _get(ops, METRICS)
    assert report == {
        "delivered": 2,
        "failed": 1,
        "retried": 3,
        "loop_errors": 0,
        "last_delivered_at": "2026-11-28T12:01:01Z",
        "last_failed_at": "2026-11-28T12:01:01Z",
        "last_run_started_at": "2026-11-28T12:01:01Z",
        "last_run_finished_at": "2026-11-28T12:01:01Z",
    }


def test_held_deliveries_and_disabled_endpoints_are_in_the_health_report(ops: Tenant, alice: Tenant) -> None:
    endpoint = NotificationEndpoint.objects.create(app=alice.app, url="http://127.0.0.1:9/never")
    notifications_queue(alice, "u1", "u2", "u3")
    NotificationEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    report = _get(ops, HEALTH)
    assert (report["backlog"], report["backlog_held"], report["disabled_endpoints"]) == (3, 3, 1)


def test_the_worker_series_are_on_the_prometheus_page(
    ops: Tenant, alice: Tenant, receiver: ScriptedReceiver, client: Client
) -> None:
    endpoint_for(alice, receiver)
    notifications_queue(alice, "u1")
    assert tasks.deliver_scheduled.apply().get()["summary"]["delivered"] == 1
    page = client.get("/metrics").content.decode()
    for series in (
        "billing_fulfillment_delivered_total",
        "billing_fulfillment_failed_total",
        "billing_fulfillment_retried_total",
        "billing_fulfillment_loop_errors_total",
        "billing_fulfillment_attempt_seconds_bucket",
        "billing_fulfillment_backlog",
        "billing_fulfillment_oldest_pending_age_seconds",
        "billing_fulfillment_last_run_finished_timestamp_seconds",
    ):
        assert f"\n{series}" in page, series
    assert REGISTRY.get_sample_value("billing_fulfillment_backlog") == 0.0
    assert (REGISTRY.get_sample_value("billing_fulfillment_delivered_total") or 0) >= 1
