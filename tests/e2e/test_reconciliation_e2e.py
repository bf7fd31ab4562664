"""A missed webhook over real HTTP: the sandbox drops a delivery, our ledger never sees the event, and
the next incremental reconciliation finds the change through the Events API and corrects the entitlement."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from apps.entitlements.models import SubscriptionRecord
from apps.reconciliation.models import Discrepancy
from apps.reconciliation.services import reconcile
from apps.webhooks.models import ProcessorEvent
from tests.e2e.conftest import Stack, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]


def test_a_dropped_delivery_is_found_by_the_next_incremental_run_and_the_entitlement_corrected(
    stack: Stack, settings: Any
) -> None:
    settings.RECONCILIATION_STRIPE_RPS = 1000
    stack.checkout("u1", "pro-monthly")
    record = eventually(
        lambda: SubscriptionRecord.objects.filter(user_id="u1", status="active").first(), what="subscription"
    )
    assert stack.check("u1", "pro")["active"] is True  # and now cached

    # The cancellation's webhook is lost: Stripe records the event, the endpoint never gets it.
    stack.sandbox.drop_deliveries(1, event_type="customer.subscription.deleted")
    stack.stripe.v1.subscriptions.cancel(record.stripe_subscription_id)
    (dropped,) = eventually(
        lambda: stack.sandbox.deliveries(event_type="customer.subscription.deleted"), what="the event"
    )
    assert dropped["status"] == "dropped"
    assert not ProcessorEvent.objects.filter(stripe_event_id=dropped["event_id"]).exists()
    record.refresh_from_db()
    assert record.status == "active" and stack.check("u1", "pro")["active"] is True  # we do not know

    # The next daily run, an hour later (a run within a second or two of the last event applied leaves a
    # correction to the run after it: comparers.common.OBSERVED_MARGIN_SECONDS).
    with time_machine.travel(timezone.now() + dt.timedelta(hours=1)):
        (run,) = reconcile(
            project=stack.tenant.project, mode="incremental", days_back=1, dry_run=False, trigger="manual"
        )

    assert run.status == "succeeded", run.error
    # Found through the window's events (the subscription was created in the window too: listed).
    assert set(Discrepancy.objects.values_list("kind", "stripe_id", "status")) == {
        ("subscription_status", record.stripe_subscription_id, "auto_resolved")
    }
    record.refresh_from_db()
    assert record.status == "canceled" and record.last_event_id.startswith("reconciliation:")
    assert stack.check("u1", "pro")["active"] is False
