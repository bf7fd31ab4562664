"""Payment intents and charges compared with our ledger, purchases, checkouts and invoices: one query
per page; corrections through the payment webhooks' own services, audited, and then nothing left."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.checkout.models import CheckoutSession, Invoice
from apps.common.models import AuditLog
from apps.common.stripe_gateway.client import as_dict
from apps.entitlements.models import Purchase, RevenueEntry
from apps.entitlements.projection import entitlements_recompute
from apps.entitlements.selectors import entitlement_check
from apps.entitlements.services import purchase_record, revenue_payment_record, revenue_refund_record
from apps.reconciliation.comparers.base import Finding
from apps.reconciliation.comparers.payments import ChargeComparer, PaymentIntentComparer
from apps.reconciliation.policy import POLICY, AcceptStripeRefused
from tests.conftest import Tenant, committed
from tests.factories import (
    BillingCustomerFactory,
    CheckoutSessionFactory,
    PriceFeatureFactory,
    PurchaseFactory,
    RevenueEntryFactory,
    invoice_with_lines,
)

intents = PaymentIntentComparer()
charges = ChargeComparer()
NOW = int(time.time())


def intent(
    pi_id: str = "pi_1",
    *,
    status: str = "succeeded",
    amount: int = 4900,
    customer: str = "cus_1",
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "usd",
        "customer": customer,
        "created": NOW - 3600,
        "latest_charge": f"ch_{pi_id}",
        "metadata": metadata or {},
    }


def charge(
    ch_id: str = "ch_1", *, pi_id: str = "pi_1", refunded: int = 0, status: str = "succeeded", amount: int = 4900
) -> dict[str, Any]:
    return {
        "id": ch_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": refunded,
        "currency": "usd",
        "customer": "cus_1",
        "payment_intent": pi_id,
        "status": status,
        "created": NOW - 3600,
        "metadata": {},
    }


@pytest.fixture
def export(alice: Tenant) -> None:
    PriceFeatureFactory.create(
        project=alice.project, stripe_price_id="price_export", feature_code="export", purchase_duration_days=30
    )


def paid(tenant: Tenant, pi_id: str = "pi_1", *, user_id: str = "u1", amount: int = 4900) -> None:
    """A one-time checkout purchase as the webhooks leave it: the purchase and the ledger's payment."""
    purchase_record(
        project=tenant.project,
        user_id=user_id,
        price_id="price_export",
        amount=amount,
        currency="usd",
        paid_at=timezone.now(),
        payment_intent_id=pi_id,
        checkout_session_id=f"cs_{pi_id}",
    )
    revenue_payment_record(
        project=tenant.project, payment_intent_id=pi_id, amount=amount, currency="usd", occurred_at=timezone.now()
    )
    entitlements_recompute(project=tenant.project, user_id=user_id)


def entitled(tenant: Tenant, user_id: str = "u1") -> bool:
    return entitlement_check(project_id=tenant.project.pk, user_id=user_id, feature_code="export")[0]


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


# --- payment intents: detection ------------------------------------------------------------------------
def test_a_page_of_fifty_paid_intents_in_step_finds_nothing_in_one_query(alice: Tenant, export: None) -> None:
    for n in range(50):
        paid(alice, f"pi_{n}", user_id=f"u{n}")
    page = [
        intent(f"pi_{n}", metadata={"project": "alpha", "user_id": f"u{n}", "checkout_session": str(n)})
        for n in range(50)
    ]
    with CaptureQueriesContext(connection) as queries:
        assert intents.compare_page(alice.project, page) == []
    assert len(queries) == 1


def test_a_succeeded_intent_missing_from_the_ledger_is_a_status_finding(alice: Tenant) -> None:
    BillingCustomerFactory.create(project=alice.project, user_id="u7", stripe_customer_id="cus_7")
    finding = only(intents.compare_page(alice.project, [intent(customer="cus_7")]))
    assert (finding.kind, finding.user_id) == ("payment_intent_status", "u7")  # named by the customer link
    assert (finding.local_value, finding.stripe_value) == (
        {"revenue_recorded": False},
        {"status": "succeeded", "amount_received": 4900},
    )
    assert POLICY[finding.kind].auto_correct


def test_intents_not_succeeded_and_never_recorded_are_not_drift(alice: Tenant) -> None:
    page = [intent("pi_a", status="requires_payment_method"), intent("pi_b", status="canceled")]
    assert intents.compare_page(alice.project, page) == []


def test_a_payment_we_recorded_that_stripe_does_not_show_succeeded_is_for_finance(alice: Tenant) -> None:
    RevenueEntryFactory.create(project=alice.project, stripe_object_id="pi_1", stripe_payment_intent_id="pi_1")
    finding = only(intents.compare_page(alice.project, [intent(status="canceled")]))
    assert (finding.kind, finding.local_value, finding.stripe_value) == (
        "payment_intent_not_succeeded",
        {"status": "succeeded"},
        {"status": "canceled"},
    )
    assert not POLICY[finding.kind].auto_correct
    with pytest.raises(AcceptStripeRefused):
        intents.correct(alice.project, finding)


def test_amounts_recorded_differently_from_stripes_are_an_amount_finding(alice: Tenant, export: None) -> None:
    paid(alice, amount=4900)
    finding = only(intents.compare_page(alice.project, [intent(amount=5900)]))
    assert (finding.kind, finding.local_value, finding.stripe_value) == (
        "payment_intent_amount",
        {"revenue_amount": 4900, "purchase_amount": 4900},
        {"amount_received": 5900},
    )
    assert not POLICY[finding.kind].auto_correct
    with pytest.raises(AcceptStripeRefused):
        intents.correct(alice.project, finding)


def test_a_paid_checkout_with_no_purchase_is_a_payment_missing_locally(alice: Tenant) -> None:
    session = CheckoutSessionFactory.create(
        customer=BillingCustomerFactory.create(project=alice.project, user_id="u1", stripe_customer_id="cus_1"),
        mode="payment",
        stripe_price_id="price_export",
    )
    meta = {"project": "alpha", "user_id": "u1", "checkout_session": str(session.pk)}
    RevenueEntryFactory.create(project=alice.project, stripe_object_id="pi_1")
    finding = only(intents.compare_page(alice.project, [intent(metadata=meta)]))
    assert (finding.kind, finding.user_id, finding.local_value) == ("payment_missing_locally", "u1", None)
    assert finding.stripe_value == {"status": "succeeded", "amount_received": 4900, "checkout_session": str(session.pk)}
    # Another project's metadata is not ours: nothing of ours is missing.
    foreign = {**meta, "project": "bravo"}
    RevenueEntryFactory.create(project=alice.project, stripe_object_id="pi_2")
    assert intents.compare_page(alice.project, [intent("pi_2", metadata=foreign)]) == []


# --- payment intents: corrections ---------------------------------------------------------------------
def test_a_lost_payment_succeeded_is_ledgered_through_the_same_service(alice: Tenant) -> None:
    finding = only(intents.compare_page(alice.project, [intent()]))
    assert intents.correct(alice.project, finding) == ["revenue +4900 usd (pi_1)"]
    entry = RevenueEntry.objects.get()
    assert (entry.kind, entry.amount, entry.stripe_object_id, int(entry.occurred_at.timestamp())) == (
        "payment",
        4900,
        "pi_1",
        NOW - 3600,
    )
    audit = AuditLog.objects.get(action="reconciliation.correct")
    assert (audit.target, audit.before, audit.after) == (
        "payment_intent:pi_1",
        {"revenue_recorded": False},
        {"revenue_recorded": True, "amount": 4900},
    )
    assert intents.compare_page(alice.project, [intent()]) == []
    assert intents.correct(alice.project, finding) == []  # idempotent: nothing left to record


def test_a_lost_checkout_completion_is_applied_and_entitles(
    alice: Tenant, export: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = CheckoutSessionFactory.create(
        customer=BillingCustomerFactory.create(project=alice.project, user_id="u1", stripe_customer_id=None),
        mode="payment",
        stripe_price_id="price_export",
        stripe_session_id="cs_1",
    )
    meta = {"project": "alpha", "user_id": "u1", "checkout_session": str(session.pk)}
    stripe_session = {
        "id": "cs_1",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "payment_intent": "pi_1",
        "customer": "cus_1",
        "amount_total": 4900,
        "currency": "usd",
        "client_reference_id": "u1",
        "metadata": meta,
    }
    asked: list[str] = []

    def retrieve(*, project_slug: str, session_id: str) -> dict[str, Any]:
        asked.append(session_id)
        return stripe_session

    monkeypatch.setattr("apps.common.stripe_gateway.checkout_session_retrieve", retrieve)
    assert not entitled(alice)
    found = {f.kind: f for f in intents.compare_page(alice.project, [intent(metadata=meta)])}
    assert set(found) == {"payment_intent_status", "payment_missing_locally"}  # no ledger row either
    finding = found["payment_missing_locally"]
    assert POLICY[finding.kind].auto_correct
    with committed():
        changes = intents.correct(alice.project, finding)
    assert asked == ["cs_1"]
    assert "checkout session cs_1 complete" in changes and "revenue +4900 usd (pi_1)" in changes
    purchase = Purchase.objects.get()
    assert (purchase.user_id, purchase.stripe_checkout_session_id, purchase.stripe_payment_intent_id) == (
        "u1",
        "cs_1",
        "pi_1",
    )
    assert entitled(alice)
    assert CheckoutSession.objects.get().status == "completed"
    assert AuditLog.objects.get(action="reconciliation.correct").after == {
        "checkout_status": "completed",
        "purchases": 1,
    }
    assert intents.compare_page(alice.project, [intent(metadata=meta)]) == []


def test_a_lost_invoice_session_completion_pays_the_invoice(alice: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    invoice = invoice_with_lines(
        project=alice.project,
        user_id="u1",
        lines=[{"name": "Report", "unit_amount": 1500, "quantity": 2, "feature_code": "export"}],
        status="open",
    )
    session = CheckoutSessionFactory.create(
        customer=invoice.customer, mode="payment", stripe_price_id="", invoice=invoice, stripe_session_id="cs_inv"
    )
    meta = {"project": "alpha", "user_id": "u1", "invoice_id": str(invoice.pk), "checkout_session": str(session.pk)}
    stripe_session = {
        "id": "cs_inv",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "payment_intent": "pi_1",
        "amount_total": 3000,
        "currency": "usd",
        "metadata": meta,
    }
    monkeypatch.setattr("apps.common.stripe_gateway.checkout_session_retrieve", lambda **kwargs: stripe_session)
    page = [intent(amount=3000, metadata=meta)]
    finding = next(f for f in intents.compare_page(alice.project, page) if f.kind == "payment_missing_locally")
    with committed():
        intents.correct(alice.project, finding)
    assert Invoice.objects.get().status == "paid"
    assert entitled(alice)
    assert intents.compare_page(alice.project, page) == []


def test_a_payment_missing_locally_without_our_session_row_is_refused(alice: Tenant) -> None:
    meta = {"project": "alpha", "user_id": "u1", "checkout_session": "999999"}
    RevenueEntryFactory.create(project=alice.project, stripe_object_id="pi_1")
    finding = only(intents.compare_page(alice.project, [intent(metadata=meta)]))
    with pytest.raises(AcceptStripeRefused):
        intents.correct(alice.project, finding)


# --- charges ----------------------------------------------------------------------------------------------
def test_a_page_of_fifty_charges_in_step_finds_nothing_in_one_query(alice: Tenant, export: None) -> None:
    for n in range(50):
        paid(alice, f"pi_{n}", user_id=f"u{n}")
    page = [charge(f"ch_{n}", pi_id=f"pi_{n}") for n in range(50)]
    with CaptureQueriesContext(connection) as queries:
        assert charges.compare_page(alice.project, page) == []
    assert len(queries) == 1


def test_a_refund_behind_our_back_is_found_against_the_ledger_and_the_purchase(alice: Tenant, export: None) -> None:
    paid(alice)
    finding = only(charges.compare_page(alice.project, [charge(refunded=4900)]))
    assert (finding.kind, finding.user_id, finding.local_value, finding.stripe_value) == (
        "charge_amount_refunded",
        "u1",
        {"amount_refunded": 0, "purchase_amount_refunded": 0},
        {"amount_refunded": 4900},
    )
    assert POLICY[finding.kind].auto_correct


def test_the_refund_correction_ends_the_purchase_and_its_entitlement(alice: Tenant, export: None) -> None:
    paid(alice)
    assert entitled(alice)
    refunded = charge(refunded=4900)
    finding = only(charges.compare_page(alice.project, [refunded]))
    with committed():
        changes = charges.correct(alice.project, finding)
    assert changes[0] == "refund -4900 usd (ch_1)"
    purchase = Purchase.objects.get()
    assert (purchase.status, purchase.amount_refunded) == ("refunded", 4900)
    assert not entitled(alice)
    audit = AuditLog.objects.get(action="reconciliation.correct")
    before, after = audit.before or {}, audit.after or {}
    assert (before["ledger_refunded"], after["ledger_refunded"]) == (0, 4900)
    assert after["purchases"][str(purchase.pk)] == {"amount_refunded": 4900, "status": "refunded"}
    assert charges.compare_page(alice.project, [refunded]) == []


def test_a_further_partial_refund_appends_only_the_increment(alice: Tenant, export: None) -> None:
    paid(alice)
    revenue_refund_record(
        project=alice.project,
        charge_id="ch_1",
        amount_refunded_total=1000,
        currency="usd",
        occurred_at=Purchase.objects.get().valid_from,
        payment_intent_id="pi_1",
    )
    # The ledger has the first refund, the purchase never heard of it; Stripe has refunded more since.
    finding = only(charges.compare_page(alice.project, [charge(refunded=2500)]))
    assert finding.local_value == {"amount_refunded": 1000, "purchase_amount_refunded": 0}
    charges.correct(alice.project, finding)
    assert sorted(RevenueEntry.objects.filter(kind="refund").values_list("amount", flat=True)) == [1000, 1500]
    assert Purchase.objects.get().amount_refunded == 2500
    assert charges.compare_page(alice.project, [charge(refunded=2500)]) == []


def test_a_refund_stripe_no_longer_counts_is_for_finance(alice: Tenant, export: None) -> None:
    paid(alice)
    charges.correct(alice.project, only(charges.compare_page(alice.project, [charge(refunded=4900)])))
    finding = only(charges.compare_page(alice.project, [charge(refunded=0)]))
    assert (finding.kind, finding.local_value, finding.stripe_value) == (
        "charge_refund_reversed",
        {"amount_refunded": 4900, "purchase_amount_refunded": 4900},
        {"amount_refunded": 0},
    )
    assert not POLICY[finding.kind].auto_correct
    with pytest.raises(AcceptStripeRefused):
        charges.correct(alice.project, finding)


def test_a_declined_attempt_of_a_refunded_payment_says_nothing_about_its_purchase(alice: Tenant) -> None:
    PurchaseFactory.create(project=alice.project, stripe_payment_intent_id="pi_1", amount_refunded=4900)
    assert charges.compare_page(alice.project, [charge("ch_declined", status="failed")]) == []


def test_accepting_a_refund_without_the_object_reads_the_charge_from_stripe(
    alice: Tenant, export: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    paid(alice)
    monkeypatch.setattr(
        "apps.common.stripe_gateway.object_retrieve",
        lambda *, project_slug, object_type, object_id: charge(object_id, refunded=4900),
    )
    stored = Finding(kind="charge_amount_refunded", object_type="charge", stripe_id="ch_1", user_id="u1")
    assert charges.correct(alice.project, stored)[0] == "refund -4900 usd (ch_1)"
    assert Purchase.objects.get().status == "refunded"


# --- with the sandbox's own objects -----------------------------------------------------------------------
def test_a_sandbox_refund_is_found_on_the_listed_charge(alice: Tenant, stripe_client: stripe.StripeClient) -> None:
    pi = stripe_client.v1.payment_intents.create(
        params={"amount": 4900, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    listed_intent = as_dict(stripe_client.v1.payment_intents.retrieve(pi.id))
    assert listed_intent["status"] == "succeeded"
    assert [f.kind for f in intents.compare_page(alice.project, [listed_intent])] == ["payment_intent_status"]
    stripe_client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})
    listed = [as_dict(item) for item in stripe_client.v1.charges.list().data]
    refunded = next(obj for obj in listed if obj["payment_intent"] == pi.id)
    finding = only(charges.compare_page(alice.project, [refunded]))
    assert finding.stripe_value == {"amount_refunded": 1000}
    charges.correct(alice.project, finding)
    assert charges.compare_page(alice.project, [refunded]) == []
