"""From checkout to entitlement over real HTTP: our API, the sandbox's hosted pages, its signed
webhooks into a live server, the ledger, processing, and the check."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from apps.entitlements.models import SubscriptionRecord
from tests.e2e.conftest import Stack, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]


def _travel_to_sandbox_time(stack: Stack) -> time_machine.travel:
    # After a clock advance the sandbox signs with its own clock; ours follows it.
    stack.sandbox.configure(sign_with_sandbox_clock=True)
    return time_machine.travel(dt.datetime.fromtimestamp(stack.sandbox.now(), tz=dt.UTC), tick=True)


def test_a_paid_checkout_makes_the_check_say_active_within_seconds(stack: Stack) -> None:
    assert stack.check("u1", "pro")["active"] is False
    stack.checkout("u1", "pro-monthly")
    answer = eventually(lambda: stack.check("u1", "pro")["active"] and stack.check("u1", "pro"), what="active")
    assert answer["valid_to"] is not None


def test_cancel_at_period_end_in_the_portal_then_a_clock_advance_ends_it(stack: Stack) -> None:
    stack.checkout("u2", "pro-monthly")
    eventually(lambda: stack.check("u2", "pro")["active"], what="active after checkout")
    stack.portal_form_post("u2", "cancel", {"when": "period_end"})
    eventually(
        lambda: SubscriptionRecord.objects.filter(user_id="u2", cancel_at_period_end=True).exists(),
        what="cancel_at_period_end recorded",
    )
    assert stack.check("u2", "pro")["active"] is True  # paid until the period ends
    stack.sandbox.advance_clock(35 * 86400)
    with _travel_to_sandbox_time(stack):
        eventually(lambda: SubscriptionRecord.objects.filter(user_id="u2", status="canceled").exists(), what="canceled")
        assert stack.check("u2", "pro")["active"] is False


def test_a_failed_renewal_goes_past_due_and_inactive_after_the_grace(stack: Stack) -> None:
    stack.tenant.project.past_due_grace_days = 2
    stack.tenant.project.save()
    stack.checkout("u3", "pro-monthly")
    record = eventually(lambda: SubscriptionRecord.objects.filter(user_id="u3").first(), what="subscription")
    # The card on file now fails: the renewal at period end cannot be charged.
    failing = stack.stripe.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": record.stripe_customer_id}
    )
    stack.stripe.v1.subscriptions.update(record.stripe_subscription_id, params={"default_payment_method": failing.id})
    stack.sandbox.advance_clock(30 * 86400 + 3600)  # just past the renewal at the end of the month
    with _travel_to_sandbox_time(stack) as traveller:
        eventually(lambda: SubscriptionRecord.objects.filter(user_id="u3", status="past_due").exists(), what="past_due")
        assert stack.check("u3", "pro")["active"] is True  # within the grace
        traveller.shift(dt.timedelta(days=2, hours=1))
        assert stack.check("u3", "pro")["active"] is False


def test_a_refund_of_a_one_time_purchase_makes_it_inactive(stack: Stack) -> None:
    stack.checkout("u4", "lifetime-export", mode="payment")
    answer = eventually(lambda: stack.check("u4", "export")["active"] and stack.check("u4", "export"), what="active")
    assert answer["valid_to"] is None  # for life
    (intent,) = stack.stripe.v1.payment_intents.list().data
    stack.stripe.v1.refunds.create(params={"payment_intent": intent.id})
    eventually(lambda: stack.check("u4", "export")["active"] is False, what="inactive after the refund")
    revenue = stack.tenant.client().get(f"/api/v1/metrics/project/{stack.tenant.project.pk}/revenue").json()
    assert revenue["revenue"] == [{"currency": "usd", "gross": 4900, "refunded": 4900, "net": 0}]


def test_a_grant_with_a_window_is_active_only_inside_it(stack: Stack) -> None:
    start = dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=1)
    body = {
        "user_id": "u5",
        "project_id": stack.tenant.project.pk,
        "feature_code": "pro",
        "granted_by": "support",
        "reason": "pilot",
        "valid_from": start.isoformat(),
        "valid_to": (start + dt.timedelta(days=2)).isoformat(),
    }
    assert stack.tenant.client().post("/api/v1/admin/grant", body, format="json").status_code == 201
    assert stack.check("u5", "pro")["active"] is False
    with time_machine.travel(start + dt.timedelta(days=1)):
        assert stack.check("u5", "pro")["active"] is True
    with time_machine.travel(start + dt.timedelta(days=3)):
        assert stack.check("u5", "pro")["active"] is False
