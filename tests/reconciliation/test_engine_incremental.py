"""Incremental runs: the window's events and new objects, not the whole account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from apps.reconciliation.models import Discrepancy, ReconciliationRun, SyncCursor
from apps.reconciliation.services import reconcile
from tests.conftest import Tenant
from tests.reconciliation.conftest import DRIFT, FakeComparer, Killed, stripe_customers

pytestmark = pytest.mark.django_db

DAY = 86400


def _incremental(tenant: Tenant, days_back: int) -> ReconciliationRun:
    (run,) = reconcile(project=tenant.project, mode="incremental", days_back=days_back, dry_run=False, trigger="manual")
    return run


def test_an_object_changed_in_the_window_is_retrieved_and_one_left_alone_is_not_looked_at(
    alice: Tenant, bob: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    changed, untouched = stripe_customers(stripe_client, alice, 2)
    (bobs,) = stripe_customers(stripe_client, bob, 1)
    stripe_sandbox.advance_clock(10 * DAY)
    # Ten days on, a change with its event (a webhook that never arrived): the object itself is old.
    stripe_client.v1.customers.update(changed, params={"metadata": {"drift": "yes"}})
    stripe_client.v1.customers.update(bobs, params={"metadata": {"drift": "yes"}})  # another project's
    (new,) = stripe_customers(stripe_client, alice, 1, drift="yes")

    with time_machine.travel(datetime.now(UTC) + timedelta(days=10)):
        run = _incremental(alice, days_back=2)

    assert run.status == "succeeded", run.error
    # The new customer from the created-in-window listing, then the changed one, retrieved.
    assert fake.pages == [[new], [changed]]
    assert untouched not in {stripe_id for page in fake.pages for stripe_id in page}
    # Events (1 page), customers created in the window (1 page), one retrieve: not bob's, not the new one's.
    assert run.stripe_requests == 3
    assert set(Discrepancy.objects.values_list("kind", "stripe_id")) == {(DRIFT, changed), (DRIFT, new)}
    assert run.days_back == 2 and run.counts["customer"]["checked"] == 2
    cursors = SyncCursor.objects.filter(project=alice.project, mode="incremental")
    assert {c.object_type for c in cursors} == {"event", "customer", "customer:changed"}
    assert all(c.completed_at is not None for c in cursors)
    window = {c.window_start for c in cursors}
    assert len(window) == 1
    (start,) = window
    assert start is not None and abs((run.started_at - timedelta(days=2) - start).total_seconds()) < 1


def test_a_killed_incremental_run_resumes_its_pass_with_the_same_window(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    stripe_customers(stripe_client, alice, 7, drift="yes")
    fake.kill_on_page = 2
    with pytest.raises(Killed):
        _incremental(alice, days_back=3)
    killed = ReconciliationRun.objects.get()
    window = SyncCursor.objects.get(object_type="event").window_start

    fake.kill_on_page = None
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=5)):
        resumed = _incremental(alice, days_back=3)

    assert resumed.status == "succeeded" and resumed.resumed_from_id == killed.pk
    assert {c.window_start for c in SyncCursor.objects.filter(mode="incremental")} == {window}
    assert Discrepancy.objects.filter(kind=DRIFT, status="open").count() == 7
    assert sum(len(page) for page in fake.pages) == 7 + 3  # the killed page is compared again
