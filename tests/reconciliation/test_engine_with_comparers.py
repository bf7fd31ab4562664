"""The engine with the real comparers (apps/reconciliation/comparers) and policy, against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from apps.entitlements.models import SubscriptionRecord
from apps.reconciliation.models import Discrepancy, ReconciliationRun
from apps.reconciliation.services import reconcile
from tests.conftest import Tenant
from tests.sandbox_objects import sandbox_subscription
from tests.transaction_guard import StripeRequests, stripe_requests

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.django_db


def _full(tenant: Tenant) -> ReconciliationRun:
    (run,) = reconcile(project=tenant.project, mode="full", days_back=None, dry_run=False, trigger="manual")
    return run


def test_a_lost_subscription_is_recorded_and_a_second_run_records_nothing_new(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, settings: Any
) -> None:
    settings.RECONCILIATION_STRIPE_RPS = 1000
    subscription_id, _ = sandbox_subscription(stripe_client, user_id="u-lost")

    first = _full(alice)

    assert first.status == "succeeded", first.error
    record = SubscriptionRecord.objects.get(stripe_subscription_id=subscription_id)
    assert (record.project_id, record.user_id, record.status) == (alice.project.pk, "u-lost", "active")
    corrected = Discrepancy.objects.get(kind="subscription_missing_locally")
    assert (corrected.status, corrected.resolution_action) == ("auto_resolved", "auto")
    assert first.summary["subscriptions_checked"] == 1 and first.summary["corrected"] >= 1
    findings = set(Discrepancy.objects.values_list("kind", "stripe_id", "status"))

    second = _full(alice)

    assert second.status == "succeeded", second.error
    assert second.summary["corrected"] == 0 and second.summary["closed"] == 0
    assert set(Discrepancy.objects.values_list("kind", "stripe_id", "status")) == findings
    assert second.db_writes == Discrepancy.objects.filter(status="open").count()  # re-seen open ones only


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_no_stripe_request_is_made_inside_a_transaction_of_ours(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, settings: Any, stripe_requests: StripeRequests
) -> None:
    settings.RECONCILIATION_STRIPE_RPS = 1000
    sandbox_subscription(stripe_client, user_id="u-lost")
    stripe_requests.seen.clear()

    run = _full(alice)

    assert run.status == "succeeded", run.error
    assert SubscriptionRecord.objects.filter(user_id="u-lost").exists()  # a correction ran, in its transaction
    stripe_requests.assert_none_inside_our_transactions()
