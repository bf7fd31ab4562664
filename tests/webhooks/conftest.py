"""Helpers for the webhook tests: signed deliveries and test handlers with countable effects.

The test handlers write AuditLog rows (a real table) so that "the effect happened exactly once" is a
count of committed rows, not of calls. registry._HANDLERS is swapped for each test, so the domain
handlers in apps/webhooks/handlers/ never interfere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from apps.common.models import AuditLog
from apps.webhooks import registry
from apps.webhooks.registry import Outcome, StripeEvent
from apps.webhooks.signature import sign

SECRET = "whsec_test_primary"
OTHER_SECRET = "whsec_test_rotated"
URL = "/api/v1/webhooks/stripe"
EFFECT = "test.effect"


@pytest.fixture(autouse=True)
def _webhook_settings(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> dict[str, registry.Registered]:
    """An empty handler registry for this test; register with registry.handles(...)."""
    fresh: dict[str, registry.Registered] = {}
    monkeypatch.setattr(registry, "_HANDLERS", fresh)
    return fresh


def make_event(
    event_id: str = "evt_test_1",
    event_type: str = "test.thing",
    *,
    created: int = 1_700_000_000,
    obj: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "livemode": False,
        "api_version": settings.STRIPE_API_VERSION,
        "data": {"object": obj if obj is not None else {"id": "obj_1", "object": "thing"}},
    }


def deliver(
    client: Client,
    event: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    header: str | None = None,
) -> Any:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    if header is None:
        header = sign(body, secret=secret, timestamp=int(time.time()) if timestamp is None else timestamp)
    headers = {"Stripe-Signature": header} if header else {}
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def effects(event_id: str | None = None) -> int:
    rows = AuditLog.objects.filter(action=EFFECT)
    return rows.filter(target=event_id).count() if event_id else rows.count()


def idempotent_effect(event: StripeEvent) -> Outcome:
    """Applies its effect once per event id, like a well-behaved domain handler."""
    project_id = event.data_object.get("project_id")
    if AuditLog.objects.filter(action=EFFECT, target=event.id).exists():
        return Outcome("processed", project_id=project_id, note="already applied")
    AuditLog.objects.create(actor="test", action=EFFECT, target=event.id, project_id=project_id)
    return Outcome("processed", project_id=project_id, changes=[f"effect for {event.id}"])


@pytest.fixture
def effect_handler(handlers: dict[str, registry.Handler]) -> Callable[[StripeEvent], Outcome]:
    registry.handles("test.thing")(idempotent_effect)
    return idempotent_effect
