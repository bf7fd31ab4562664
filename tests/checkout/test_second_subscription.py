"""A second subscription giving a feature the user already pays for is refused with 409, before Stripe."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from apps.checkout.models import BillingCustomer, CheckoutSession
from apps.entitlements.models import SubscriptionRecord
from apps.projects.models import Project
from tests.checkout.conftest import checkout_body, counts
from tests.conftest import Tenant
from tests.factories import SubscriptionRecordFactory

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]
CHECKOUT = "/api/v1/checkout/session"


def _holds(tenant: Tenant, price_id: str, *, status: str = "active", user_id: str = "user_42") -> SubscriptionRecord:
    # What the 409 looks at (project, user, status, prices); the factory fills in the rest.
    return SubscriptionRecordFactory.create(
        project=tenant.project, user_id=user_id, status=status, price_ids=[price_id]
    )


def _refused(tenant: Tenant, body: dict[str, Any], client: stripe.StripeClient) -> str:
    before = counts(client)
    response = tenant.client().post(CHECKOUT, body, format="json")
    assert response.status_code == 409, response.json()
    assert list(response.json()) == ["detail"]
    # Refused before any Stripe call: not even the customer was created.
    assert counts(client) == before
    assert not CheckoutSession.objects.exists()
    assert not BillingCustomer.objects.exists()
    detail: str = response.json()["detail"]
    return detail


@pytest.mark.parametrize("status", ["active", "trialing", "past_due"])
def test_a_subscription_to_another_price_of_the_same_feature_is_409_pointing_to_the_portal(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient, status: str
) -> None:
    _holds(alice, catalog["pro-monthly"], status=status)
    detail = _refused(alice, checkout_body(alice, catalog["pro-annual"]), stripe_client)
    assert "user_42 already has an active subscription giving 'pro'" in detail
    assert "customer portal: POST /api/v1/portal/session" in detail


def test_the_same_price_again_is_409(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    _holds(alice, catalog["pro-monthly"])
    assert "'pro'" in _refused(alice, checkout_body(alice, catalog["pro-monthly"]), stripe_client)


def test_the_same_price_without_a_feature_is_409_too(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    from apps.catalog.models import PriceFeature

    PriceFeature.objects.filter(project=alice.project).delete()
    _holds(alice, catalog["pro-monthly"])
    detail = _refused(alice, checkout_body(alice, catalog["pro-monthly"]), stripe_client)
    assert f"active subscription to {catalog['pro-monthly']}" in detail


@pytest.mark.parametrize("status", ["canceled", "incomplete", "incomplete_expired", "unpaid"])
def test_a_subscription_that_no_longer_holds_does_not_block(
    alice: Tenant, catalog: dict[str, str], status: str
) -> None:
    _holds(alice, catalog["pro-monthly"], status=status)
    response = alice.client().post(CHECKOUT, checkout_body(alice, catalog["pro-annual"]), format="json")
    assert response.status_code == 201, response.json()


def test_a_project_that_allows_several_subscriptions_gets_a_second(alice: Tenant, catalog: dict[str, str]) -> None:
    Project.objects.filter(pk=alice.project.pk).update(allow_multiple_subscriptions=True)
    _holds(alice, catalog["pro-monthly"])
    response = alice.client().post(CHECKOUT, checkout_body(alice, catalog["pro-annual"]), format="json")
    assert response.status_code == 201, response.json()


def test_another_users_or_a_one_time_purchase_is_not_blocked(alice: Tenant, catalog: dict[str, str]) -> None:
    _holds(alice, catalog["pro-monthly"], user_id="someone_else")
    assert alice.client().post(CHECKOUT, checkout_body(alice, catalog["pro-annual"]), format="json").status_code == 201
    _holds(alice, catalog["pro-monthly"])
    payment = checkout_body(alice, catalog["lifetime-export"], mode="payment")
    assert alice.client().post(CHECKOUT, payment, format="json").status_code == 201


def test_another_projects_subscription_does_not_block(alice: Tenant, bob: Tenant, catalog: dict[str, str]) -> None:
    _holds(bob, catalog["pro-monthly"])  # same user id, another tenant
    assert alice.client().post(CHECKOUT, checkout_body(alice, catalog["pro-annual"]), format="json").status_code == 201
