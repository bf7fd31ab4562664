"""Redis pointed at a dead port: keys, webhooks, processing, grants and checks all stay correct."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from billing_service.cache_config import redis_cache
from tests.conftest import Tenant, committed
from tests.entitlements.conftest import subscription_snapshot
from tests.factories import PriceFeatureFactory
from tests.webhooks.conftest import SECRET, deliver, make_event

pytestmark = pytest.mark.django_db


def test_with_the_cache_down_every_answer_is_still_correct(client: Client, alice: Tenant, settings: object) -> None:
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0", socket_timeout=0.05, key_prefix="t")}  # type: ignore[attr-defined]
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]  # type: ignore[attr-defined]
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    api = alice.client()
    check = f"/api/v1/entitlements/check?user_id=u1&project_id={alice.project.pk}&feature_code=pro"

    assert api.get("/api/v1/me").status_code == 200  # the key resolves from the database
    assert api.get(check).json()["active"] is False

    now = int(time.time())
    active = make_event(
        "evt_down_1", "customer.subscription.created", created=now - 10, obj=subscription_snapshot("sub_d")
    )
    with committed():
        assert deliver(client, active).status_code == 200
    assert api.get(check).json()["active"] is True  # never a denial for lack of a cache

    canceled = make_event(
        "evt_down_2",
        "customer.subscription.deleted",
        created=now,
        obj=subscription_snapshot("sub_d", status="canceled", ended_at=now - 1, canceled_at=now - 1),
    )
    with committed():
        assert deliver(client, canceled).status_code == 200
    assert api.get(check).json()["active"] is False  # and never a stale grant either

    grant = {"user_id": "u1", "project_id": alice.project.pk, "feature_code": "pro", "granted_by": "s", "reason": "r"}
    with committed():
        assert api.post("/api/v1/admin/grant", grant, format="json").status_code == 201
    assert api.get(check).json()["active"] is True
    assert client.get("/ready").status_code == 503
