"""Every trigger: beat's jobs, the command, a requested run executed by the worker; and the metrics."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from celery import current_app
from django.core.management import call_command
from django.core.management.base import CommandError
from prometheus_client import REGISTRY

from apps.checkout.models import BillingCustomer
from apps.common.models import JobRun
from apps.projects.models import Project
from apps.reconciliation.models import ReconciliationRun
from apps.reconciliation.services import reconciliation_run_request
from apps.reconciliation.tasks import reconcile_daily, reconcile_weekly
from billing_service.beat_schedule import scheduled_task
from tests.conftest import Tenant, committed
from tests.reconciliation.conftest import DRIFT, FakeComparer, stripe_customers

pytestmark = pytest.mark.django_db


def _linked(tenant: Tenant, stripe_id: str) -> None:
    """A customer of ours at Stripe: what makes a project one to reconcile."""
    BillingCustomer.objects.create(project=tenant.project, user_id=f"linked-{stripe_id}", stripe_customer_id=stripe_id)


def _summary(output: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(output[output.index('{\n  "runs"') :])
    return result


def _metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_beat_declares_a_daily_incremental_and_a_weekly_full_job() -> None:
    daily, weekly = scheduled_task("reconcile-daily"), scheduled_task("reconcile-weekly")
    assert (daily.task, daily.crontab) == ("reconciliation.reconcile_daily", "0 3 * * 1-6")
    assert (weekly.task, weekly.crontab) == ("reconciliation.reconcile_weekly", "0 3 * * 0")
    assert weekly.policy.timeout_seconds > daily.policy.timeout_seconds >= 3600
    task = current_app.tasks["reconciliation.run"]
    assert task.acks_late is False and task.reject_on_worker_lost is False


def test_the_command_reconciles_one_project_with_progress_and_a_json_summary(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    drifted = stripe_customers(stripe_client, alice, 4, drift="yes")
    out = StringIO()

    call_command("reconcile", "--project", "alpha", "--mode", "full", stdout=out)

    output = out.getvalue()
    assert "customer: page 1, 3 listed, 3 ours, 3 drift" in output
    assert "customer: page 2, 1 listed, 1 ours, 1 drift" in output
    (summary,) = _summary(output)["runs"]
    assert summary["drift_detected"] == 4 and summary["mode"] == "full" and summary["trigger"] == "manual"
    assert summary["subscriptions_checked"] == 0 and summary["stripe_requests"] == 2
    run = ReconciliationRun.objects.get()
    assert run.summary == summary and run.requested_by == "manage.py reconcile"
    assert len(drifted) == run.counts["total"]["left_open"]
    assert not JobRun.objects.exists()  # one project: its run under its lock, not the job


def test_the_command_for_every_project_goes_through_the_job(
    alice: Tenant, bob: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    (alices,) = stripe_customers(stripe_client, alice, 1, drift="yes")
    _linked(alice, alices)
    Project.objects.create(name="Idle", slug="idle")  # nothing at Stripe: not reconciled
    out = StringIO()

    call_command("reconcile", "--mode", "full", stdout=out)

    job_run = JobRun.objects.get()
    assert (job_run.job, job_run.trigger, job_run.outcome) == ("reconcile-weekly", "manual", "succeeded")
    assert job_run.requested_by.startswith("manage.py reconcile (")
    assert job_run.summary["runs"] == {"alpha": ReconciliationRun.objects.get().pk}
    assert job_run.summary["drift_detected"] == 1
    assert [run["project"] for run in _summary(out.getvalue())["runs"]] == ["alpha"]


def test_the_command_fails_loudly_when_a_run_fails(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    stripe_customers(stripe_client, alice, 1)

    def broken(project: Project, page: int) -> None:
        raise RuntimeError("comparer bug")

    fake.on_page = broken
    out = StringIO()
    with pytest.raises(CommandError, match="RuntimeError: comparer bug"):
        call_command("reconcile", "--project", "alpha", "--mode", "full", stdout=out)
    assert _summary(out.getvalue())["runs"][0]["status"] == "failed"


def test_beat_runs_nothing_when_reconciliation_is_disabled(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer, settings: Any
) -> None:
    (alices,) = stripe_customers(stripe_client, alice, 1)
    _linked(alice, alices)
    settings.RECONCILIATION_ENABLED = False

    result = reconcile_daily.delay().get()

    assert result["outcome"] == "succeeded" and result["summary"] == {"enabled": False}
    assert not ReconciliationRun.objects.exists()


def test_a_failed_project_fails_the_job_and_its_retry_reconciles_only_what_is_left(
    alice: Tenant, bob: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    for tenant in (alice, bob):
        (customer,) = stripe_customers(stripe_client, tenant, 1, drift="yes")
        _linked(tenant, customer)
    failures = [1]

    def flaky(project: Project, page: int) -> None:
        if project.slug == "bravo" and failures[0]:
            failures[0] -= 1
            raise RuntimeError("bravo's page went wrong")

    fake.on_page = flaky

    reconcile_weekly.delay().get()  # eager: its retry runs at once

    attempts = list(JobRun.objects.filter(job="reconcile-weekly").order_by("attempt"))
    assert [(r.trigger, r.attempt, r.outcome) for r in attempts] == [
        ("scheduled", 1, "failed"),
        ("retry", 2, "succeeded"),
    ]
    assert "bravo run #" in attempts[0].error and "bravo's page went wrong" in attempts[0].error
    assert attempts[1].summary["already_done"] == ["alpha"]
    runs = ReconciliationRun.objects.order_by("pk")
    assert [(r.project.slug, r.status, r.trigger) for r in runs] == [
        ("alpha", "succeeded", "scheduled"),
        ("bravo", "failed", "scheduled"),
        ("bravo", "succeeded", "scheduled"),
    ]


def test_a_requested_run_is_executed_by_the_worker_and_measured(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    stripe_customers(stripe_client, alice, 2, drift="yes")
    runs_before = _metric("billing_reconciliation_runs_total", {"mode": "full", "outcome": "succeeded"})
    drift_before = _metric("billing_reconciliation_drift_total", {"kind": DRIFT})
    requests_before = _metric("billing_reconciliation_stripe_requests_total")

    with committed():
        run = reconciliation_run_request(project=alice.project, mode="full", requested_by="app:ops")
        assert run.status == "running"

    run.refresh_from_db()
    assert run.status == "succeeded" and run.trigger == "api" and run.counts["total"]["drift_found"] == 2
    assert run.finished_at is not None and run.duration_ms is not None
    assert _metric("billing_reconciliation_runs_total", {"mode": "full", "outcome": "succeeded"}) == runs_before + 1
    assert _metric("billing_reconciliation_drift_total", {"kind": DRIFT}) == drift_before + 2
    assert _metric("billing_reconciliation_stripe_requests_total") == requests_before + run.stripe_requests
    assert run.finished_at.timestamp() == pytest.approx(
        _metric("billing_reconciliation_last_success_timestamp_seconds", {"mode": "full"})
    )


def test_a_dry_run_is_measured_apart_and_is_not_a_success_to_alert_on(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    stripe_customers(stripe_client, alice, 1, drift="yes")
    dry_before = _metric("billing_reconciliation_runs_total", {"mode": "incremental", "outcome": "dry_run"})
    drift_before = _metric("billing_reconciliation_drift_total", {"kind": DRIFT})
    out = StringIO()

    call_command("reconcile", "--project", "alpha", "--dry-run", "--days-back", "2", stdout=out)

    assert _metric("billing_reconciliation_runs_total", {"mode": "incremental", "outcome": "dry_run"}) == dry_before + 1
    assert _metric("billing_reconciliation_drift_total", {"kind": DRIFT}) == drift_before
    (summary,) = _summary(out.getvalue())["runs"]
    assert summary["dry_run"] is True and summary["drift_detected"] == 1 and summary["days_back"] == 2
