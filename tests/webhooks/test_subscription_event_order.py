"""Every order of a subscription's lifecycle events, with late stale deliveries, ends the same.

Real handlers, real ledger, signed deliveries through the endpoint, on PostgreSQL.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from django.test import Client

from apps.entitlements.models import SubscriptionRecord
from apps.entitlements.selectors import entitlement_check
from apps.webhooks.models import ProcessorEvent
from tests.conftest import Tenant, committed
from tests.entitlements.conftest import subscription_snapshot
from tests.factories import PriceFeatureFactory
from tests.webhooks.conftest import deliver, make_event

pytestmark = [pytest.mark.django_db, pytest.mark.requires_postgres]

T0 = int(time.time()) - 3600
LIFECYCLE: list[tuple[str, int, dict[str, Any]]] = [
    ("customer.subscription.created", T0, {"status": "incomplete"}),
    ("customer.subscription.updated", T0 + 10, {"status": "trialing"}),
    ("customer.subscription.updated", T0 + 20, {"status": "active"}),
    ("customer.subscription.deleted", T0 + 30, {"status": "canceled", "ended_at": T0 + 30, "canceled_at": T0 + 30}),
]


def _events(sub_id: str) -> list[dict[str, Any]]:
    return [
        make_event(
            f"evt_{sub_id}_{index}",
            event_type,
            created=created,
            obj=subscription_snapshot(sub_id, start=T0, period_end=T0 + 30 * 86400, user_id=sub_id, **fields),
        )
        for index, (event_type, created, fields) in enumerate(LIFECYCLE)
    ]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_every_delivery_order_ends_canceled_and_inactive(client: Client, alice: Tenant, order: tuple[int, ...]) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    sub_id = "sub_" + "".join(map(str, order))
    events = _events(sub_id)
    for index in order:
        with committed():
            assert deliver(client, events[index]).status_code == 200
    # Late deliveries: a retry of an old event, and an old state under a new event id.
    late_stale = make_event(
        f"evt_{sub_id}_late",
        "customer.subscription.updated",
        created=T0 + 25,
        obj=subscription_snapshot(sub_id, status="active", start=T0, period_end=T0 + 30 * 86400, user_id=sub_id),
    )
    with committed():
        assert deliver(client, events[2]).json()["duplicate"] is True
        assert deliver(client, late_stale).status_code == 200

    record = SubscriptionRecord.objects.get(stripe_subscription_id=sub_id)
    assert record.status == "canceled"
    assert record.last_event_id == f"evt_{sub_id}_3"
    assert record.ended_at is not None and int(record.ended_at.timestamp()) == T0 + 30
    assert entitlement_check(project_id=alice.project.pk, user_id=sub_id, feature_code="pro")[0] is False
    assert ProcessorEvent.objects.filter(stripe_event_id__startswith=f"evt_{sub_id}").count() == 5
    stale = ProcessorEvent.objects.get(stripe_event_id=f"evt_{sub_id}_late")
    assert stale.status == "processed"
    assert stale.note.startswith("stale")
