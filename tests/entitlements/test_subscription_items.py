"""SubscriptionRecord.items: the small copy of a snapshot's billed items the dashboard's MRR reads."""

from __future__ import annotations

import pytest

from apps.entitlements.models import SubscriptionRecord, subscription_items
from tests.factories import SubscriptionRecordFactory

pytestmark = pytest.mark.django_db

SNAPSHOT = {
    "items": {
        "data": [
            {
                "quantity": 2,
                "price": {
                    "id": "price_q",
                    "currency": "eur",
                    "unit_amount": 9000,
                    "recurring": {"interval": "month", "interval_count": 3},
                },
            },
            {"price": "price_not_expanded"},  # a bare id says nothing about the amount
            {"price": {"id": "price_once", "currency": "usd", "unit_amount": 500, "recurring": None}},
        ]
    }
}


def test_items_keep_what_mrr_needs_of_each_expanded_price() -> None:
    assert subscription_items(SNAPSHOT) == [
        {
            "price": "price_q",
            "currency": "eur",
            "unit_amount": 9000,
            "interval": "month",
            "interval_count": 3,
            "quantity": 2,
        },
        {
            "price": "price_once",
            "currency": "usd",
            "unit_amount": 500,
            "interval": None,
            "interval_count": None,
            "quantity": None,
        },
    ]
    assert subscription_items({}) == subscription_items(None) == []


def test_saving_a_record_keeps_its_items_in_step_with_its_snapshot() -> None:
    record = SubscriptionRecordFactory.create(stripe_data=SNAPSHOT)
    assert [item["price"] for item in SubscriptionRecord.objects.get(pk=record.pk).items] == ["price_q", "price_once"]
    record.stripe_data = {"items": {"data": []}}
    record.save(update_fields=["stripe_data"])
    assert SubscriptionRecord.objects.get(pk=record.pk).items == []
