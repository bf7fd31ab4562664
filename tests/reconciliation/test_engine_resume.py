"""Durable cursors: a run that dies or fails resumes where it stopped, and ends as an uninterrupted run would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from apps.checkout.models import BillingCustomer
from apps.projects.models import Project
from apps.reconciliation.models import Discrepancy, ReconciliationRun, SyncCursor, SyncCursorPage
from apps.reconciliation.services import reconcile
from tests.conftest import Tenant
from tests.reconciliation.conftest import FakeComparer, Killed, stripe_customers

pytestmark = pytest.mark.django_db


def _full(tenant: Tenant, *, dry_run: bool = False) -> ReconciliationRun:
    (run,) = reconcile(project=tenant.project, mode="full", days_back=None, dry_run=dry_run, trigger="manual")
    return run


def _world(alice: Tenant, stripe_client: Any) -> list[str]:
    """12 customers (4 pages of 3) with drift, an auto-corrected kind, and a linked one deleted at Stripe."""
    ids = stripe_customers(stripe_client, alice, 3, drift="yes")
    ids += stripe_customers(stripe_client, alice, 3)
    ids += stripe_customers(stripe_client, alice, 2, auto="yes")
    ids += stripe_customers(stripe_client, alice, 4, drift="yes")
    (gone,) = stripe_customers(stripe_client, alice, 1)
    stripe_client.v1.customers.delete(gone)
    BillingCustomer.objects.create(project=alice.project, user_id="linked-1", stripe_customer_id=ids[4])
    BillingCustomer.objects.create(project=alice.project, user_id="linked-2", stripe_customer_id=gone)
    return ids


def _findings() -> set[tuple[str, str, str]]:
    return set(Discrepancy.objects.values_list("kind", "stripe_id", "status"))


def test_a_killed_run_resumes_from_its_cursor_and_ends_with_the_same_findings_as_an_uninterrupted_one(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    ids = _world(alice, stripe_client)
    newest_first = list(reversed(ids))
    fake.kill_on_page = 3

    with pytest.raises(Killed):
        _full(alice)

    killed = ReconciliationRun.objects.get()
    assert killed.status == "running"  # a dead process records nothing
    cursor = SyncCursor.objects.get(project=alice.project, mode="full", object_type="customer")
    assert (cursor.pages, cursor.starting_after, cursor.completed_at) == (2, newest_first[5], None)
    assert killed.cursors["customer"]["starting_after"] == newest_first[5]

    # Past the grace, the next trigger finds the project's lock free: the killed run is dead.
    fake.kill_on_page = None
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=150)):
        resumed = _full(alice)

    killed.refresh_from_db()
    assert killed.status == "failed" and killed.error.startswith("Abandoned: its process stopped")
    assert resumed.status == "succeeded", resumed.error
    assert resumed.resumed_from_id == killed.pk and resumed.summary["took_over"] == killed.pk
    # The resumed run listed only what the killed one had not checkpointed (page 3 again, then 4).
    assert fake.pages[3:] == [newest_first[6:9], newest_first[9:12]]
    assert resumed.stripe_requests == 2 + 1  # two list pages, one retrieve to confirm the missing customer
    assert SyncCursorPage.objects.count() == 0  # the pass is complete: its pages' ids are dropped
    resumed_findings, resumed_corrections = _findings(), sorted(fake.corrected)

    # The same world reconciled from scratch, without a kill.
    Discrepancy.objects.all().delete()
    SyncCursor.objects.all().delete()
    fake.fixed.clear()
    fake.corrected.clear()
    uninterrupted = _full(alice)

    assert uninterrupted.resumed_from_id is None
    assert _findings() == resumed_findings
    assert sorted(fake.corrected) == resumed_corrections
    assert {(kind, status) for kind, _, status in resumed_findings} == {
        ("fake_drift", "open"),
        ("fake_auto", "auto_resolved"),
        ("fake_missing", "open"),
    }
    assert len(resumed_findings) == 7 + 2 + 1


def test_a_page_that_keeps_failing_fails_the_run_with_the_error_and_the_next_run_resumes(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer, settings: Any
) -> None:
    settings.STRIPE_RETRY_BUDGET_SECONDS = 1.0
    ids = _world(alice, stripe_client)

    def outage(project: Project, page: int) -> None:
        if page == 1:  # Stripe goes down once the first page is in
            stripe_sandbox.set_fault("/v1/customers", method="GET", status=500)

    fake.on_page = outage
    failed = _full(alice)

    assert failed.status == "failed"
    assert failed.error == "StripeUnavailable: Stripe is unavailable; retry later."
    assert failed.summary["error"] == failed.error and failed.finished_at is not None
    # The page was tried again and again within the gateway's budget: every attempt is counted.
    assert failed.stripe_requests > 2
    cursor = SyncCursor.objects.get(project=alice.project, mode="full")
    assert cursor.pages == 1 and cursor.completed_at is None

    stripe_sandbox.clear_faults()
    fake.on_page = None
    resumed = _full(alice)

    assert resumed.status == "succeeded" and resumed.resumed_from_id == failed.pk
    assert len(fake.pages) == 4  # page 1 once, then 2 to 4
    assert {kind for kind, _, _ in _findings()} == {"fake_drift", "fake_auto", "fake_missing"}
    assert len(_findings()) == 10
    assert set(ids[:3]) <= {stripe_id for _, stripe_id, _ in _findings()}


def test_429_and_500_for_a_while_slow_the_run_but_lose_and_duplicate_nothing(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    _world(alice, stripe_client)
    stripe_sandbox.set_fault("/v1/customers", method="GET", status=429, retry_after=1, count=2)
    stripe_sandbox.set_fault("/v1/customers", method="GET", status=500, count=2)

    run = _full(alice)

    assert run.status == "succeeded", run.error
    assert run.stripe_requests == 4 + 1 + 4  # 4 pages, 1 retrieve, 4 failed attempts retried
    assert len(fake.pages) == 4
    assert len(_findings()) == 10 and Discrepancy.objects.filter(status="open").count() == 8


def test_a_dry_run_writes_nothing_and_leaves_the_real_cursors_alone(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    _world(alice, stripe_client)
    fake.kill_on_page = 2
    with pytest.raises(Killed):
        _full(alice)
    real_cursor = SyncCursor.objects.values().get()
    before = _findings()
    ReconciliationRun.objects.filter(status="running").update(status="failed")
    fake.kill_on_page = None

    dry = _full(alice, dry_run=True)

    assert dry.status == "succeeded" and dry.dry_run
    assert _findings() == before and fake.corrected == []
    assert SyncCursor.objects.values().get() == real_cursor
    assert dry.counts["customer"]["drift_found"] == 10 and dry.counts["customer"]["corrected"] == 0
    assert dry.summary["would_correct"] == 2 and dry.db_writes == 0
    assert dry.cursors["customer"]["completed_at"] is not None and dry.resumed_from_id is None


def test_a_pass_left_unfinished_for_more_than_a_day_starts_again(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    _world(alice, stripe_client)
    fake.kill_on_page = 2
    with pytest.raises(Killed):
        _full(alice)
    fake.kill_on_page = None

    with time_machine.travel(datetime.now(UTC) + timedelta(days=1, minutes=1)):
        later = _full(alice)

    assert later.status == "succeeded" and later.resumed_from_id is None
    assert len(fake.pages) == 2 + 4  # listed again from the first page
    assert SyncCursor.objects.get().pass_started_at == later.started_at
