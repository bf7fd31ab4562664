from __future__ import annotations

import pytest
import stripe

from apps.common.idempotency import idempotency_records_purge
from apps.common.models import IdempotencyRecord
from stripe_sandbox.testing import SandboxProcess
from tests.checkout.conftest import checkout_body
from tests.conftest import Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


def test_the_same_key_and_body_replay_the_first_response(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    api = alice.client()
    body = checkout_body(alice, catalog["pro-monthly"])
    first = api.post("/api/v1/checkout/session", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    second = api.post("/api/v1/checkout/session", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert len(stripe_client.v1.checkout.sessions.list().data) == 1


def test_the_same_key_with_another_body_is_409(alice: Tenant, catalog: dict[str, str]) -> None:
    api = alice.client()
    api.post(
        "/api/v1/checkout/session",
        checkout_body(alice, catalog["pro-monthly"]),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    other = api.post(
        "/api/v1/checkout/session", checkout_body(alice, catalog["pro-annual"]), format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert other.status_code == 409
    assert other.json() == {"detail": "This Idempotency-Key was already used with a different request."}


def test_keys_are_scoped_per_project(alice: Tenant, bob: Tenant, catalog: dict[str, str]) -> None:
    alice.client().post(
        "/api/v1/checkout/session",
        checkout_body(alice, catalog["pro-monthly"]),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    # Bob's identical key is his own: it is not a replay of Alice's answer (his price check runs).
    response = bob.client().post(
        "/api/v1/checkout/session", checkout_body(bob, catalog["pro-monthly"]), format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert response.status_code == 400
    assert "price_id" in response.json()


def test_a_failed_request_is_not_kept_so_a_retry_runs_afresh(
    alice: Tenant, catalog: dict[str, str], stripe_sandbox: SandboxProcess, settings: object
) -> None:
    settings.STRIPE_RETRY_BUDGET_SECONDS = 0.5  # type: ignore[attr-defined]
    stripe_sandbox.set_fault("/v1/checkout/sessions", method="POST", status=500, count=10)
    api = alice.client()
    body = checkout_body(alice, catalog["pro-monthly"])
    assert api.post("/api/v1/checkout/session", body, format="json", HTTP_IDEMPOTENCY_KEY="r").status_code == 502
    stripe_sandbox.clear_faults()
    assert api.post("/api/v1/checkout/session", body, format="json", HTTP_IDEMPOTENCY_KEY="r").status_code == 201


def test_old_records_are_purged(alice: Tenant, catalog: dict[str, str]) -> None:
    from datetime import timedelta

    from django.utils import timezone

    alice.client().post(
        "/api/v1/checkout/session",
        checkout_body(alice, catalog["pro-monthly"]),
        format="json",
        HTTP_IDEMPOTENCY_KEY="o",
    )
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_records_purge() == 1
    assert not IdempotencyRecord.objects.exists()
