from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from apps.entitlements.projection import entitlements_recompute
from apps.entitlements.services import subscription_apply_snapshot
from tests.conftest import Tenant
from tests.factories import PriceFeatureFactory

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
DAY = 86400


def ts(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def subscription_snapshot(
    sub_id: str = "sub_1",
    *,
    status: str = "active",
    price: str = "price_pro",
    start: int | None = None,
    period_end: int | None = None,
    user_id: str = "u1",
    project: str = "alpha",
    **extra: Any,
) -> dict[str, Any]:
    start = start if start is not None else ts(NOW) - 10 * DAY
    end = period_end if period_end is not None else ts(NOW) + 20 * DAY
    return {
        "id": sub_id,
        "object": "subscription",
        "status": status,
        "customer": "cus_1",
        "start_date": start,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "metadata": {"project": project, "user_id": user_id},
        "items": {"data": [{"price": {"id": price}, "current_period_start": start, "current_period_end": end}]},
        **extra,
    }


@pytest.fixture
def pro(alice: Tenant) -> str:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    PriceFeatureFactory.create(
        project=alice.project, stripe_price_id="price_export", feature_code="export", purchase_duration_days=30
    )
    return "pro"


def apply(tenant: Tenant, snapshot: dict[str, Any], created: int, event_id: str, user_id: str = "u1") -> list[str]:
    changes, _ = subscription_apply_snapshot(
        project=tenant.project, user_id=user_id, data=snapshot, event_created=created, event_id=event_id
    )
    entitlements_recompute(project=tenant.project, user_id=user_id)
    return changes
