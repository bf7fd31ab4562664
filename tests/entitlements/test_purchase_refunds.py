"""Refunds and purchases commute at the service level, for invoices as for checkout sessions."""

from __future__ import annotations

import datetime as dt

from apps.entitlements.models import Purchase, RevenueEntry
from apps.entitlements.services import purchase_record, purchase_refund_apply, revenue_refund_record
from tests.conftest import Tenant
from tests.entitlements.conftest import NOW

PAID = NOW - dt.timedelta(days=2)
REFUNDED = NOW - dt.timedelta(days=1)


def _refund(tenant: Tenant, cumulative: int, *, at: dt.datetime = REFUNDED, intent: str = "pi_1") -> None:
    revenue_refund_record(
        project=tenant.project,
        charge_id="ch_1",
        amount_refunded_total=cumulative,
        currency="usd",
        occurred_at=at,
        payment_intent_id=intent,
    )
    purchase_refund_apply(project=tenant.project, payment_intent_id=intent, amount_refunded=cumulative, refunded_at=at)


def _invoice_purchase(tenant: Tenant, *, intent: str = "pi_1") -> list[str]:
    return purchase_record(
        project=tenant.project,
        user_id="u1",
        price_id="price_export",
        amount=4900,
        currency="usd",
        paid_at=PAID,
        payment_intent_id=intent,
        invoice_id="in_1:il_1",
    )


def test_an_invoice_purchase_recorded_after_its_refund_is_refunded(alice: Tenant, pro: str) -> None:
    _refund(alice, 4900)
    changes = _invoice_purchase(alice)
    purchase = Purchase.objects.get()
    assert (purchase.status, purchase.amount_refunded, purchase.refunded_at) == ("refunded", 4900, REFUNDED)
    assert changes[-1].endswith("(the refund arrived first)")


def test_the_cumulative_refund_never_goes_backwards(alice: Tenant, pro: str) -> None:
    _invoice_purchase(alice)
    _refund(alice, 4900)
    _refund(alice, 1000, at=REFUNDED - dt.timedelta(hours=1))  # the partial one, delivered late
    purchase = Purchase.objects.get()
    assert (purchase.status, purchase.amount_refunded, purchase.refunded_at) == ("refunded", 4900, REFUNDED)
    assert [entry.amount for entry in RevenueEntry.objects.filter(kind="refund")] == [4900]


def test_partial_refunds_seen_first_add_up_to_the_largest_cumulative(alice: Tenant, pro: str) -> None:
    _refund(alice, 1000, at=REFUNDED - dt.timedelta(hours=1))
    _refund(alice, 2500)
    _refund(alice, 1000, at=REFUNDED - dt.timedelta(hours=1))  # a redelivery
    _invoice_purchase(alice)
    purchase = Purchase.objects.get()
    assert (purchase.status, purchase.amount_refunded, purchase.refunded_at) == ("paid", 2500, REFUNDED)


def test_a_refund_of_another_payment_is_not_applied(alice: Tenant, pro: str) -> None:
    _refund(alice, 4900, intent="pi_other")
    _invoice_purchase(alice)
    assert Purchase.objects.get().amount_refunded == 0


def test_a_purchase_without_a_payment_intent_takes_no_refund(alice: Tenant, pro: str) -> None:
    revenue_refund_record(
        project=alice.project,
        charge_id="ch_legacy",
        amount_refunded_total=4900,
        currency="usd",
        occurred_at=REFUNDED,
    )
    _invoice_purchase(alice, intent="")
    assert Purchase.objects.get().amount_refunded == 0
