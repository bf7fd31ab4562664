"""The metrics aggregates, read straight from the selectors the metrics views call."""

from __future__ import annotations

import datetime as dt

import pytest

from apps.entitlements.selectors import revenue_totals, subscription_counts
from tests.conftest import Tenant
from tests.factories import RevenueEntryFactory, SubscriptionRecordFactory

pytestmark = pytest.mark.django_db

JAN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FEB = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def _entry(tenant: Tenant, kind: str, amount: int, at: dt.datetime, currency: str = "eur") -> None:
    RevenueEntryFactory.create(
        project=tenant.project,
        kind=kind,
        stripe_object_id=f"{kind}-{amount}-{at:%m}-{currency}",
        amount=amount,
        currency=currency,
        occurred_at=at,
    )


def test_revenue_runs_from_start_inclusive_to_end_exclusive_per_currency(alice: Tenant, bob: Tenant) -> None:
    _entry(alice, "payment", 1000, JAN)
    _entry(alice, "refund", 300, JAN + dt.timedelta(days=3))
    _entry(alice, "payment", 500, JAN, currency="usd")
    _entry(alice, "payment", 7000, FEB)  # at the end bound: left out
    _entry(bob, "payment", 9999, JAN)  # another project's
    assert revenue_totals(project_id=alice.project.pk, start=JAN, end=FEB) == [
        {"currency": "eur", "gross": 1000, "refunded": 300, "net": 700},
        {"currency": "usd", "gross": 500, "refunded": 0, "net": 500},
    ]
    assert revenue_totals(project_id=alice.project.pk, start=FEB)[0]["gross"] == 7000


def test_subscriptions_are_counted_by_status_and_active_ones_by_price(alice: Tenant) -> None:
    for status, prices in [
        ("active", ["p_a"]),
        ("trialing", ["p_a", "p_b"]),
        ("canceled", ["p_a"]),
        ("past_due", ["p_b"]),
    ]:
        SubscriptionRecordFactory.create(project=alice.project, status=status, price_ids=prices)
    assert subscription_counts(project_id=alice.project.pk) == {
        "active_subscriptions": 2,
        "by_status": {"active": 1, "canceled": 1, "past_due": 1, "trialing": 1},
        "by_price": {"p_a": 2, "p_b": 1},
    }
