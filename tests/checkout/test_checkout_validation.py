"""Each invalid checkout is a 400 naming what is wrong, and nothing is created at Stripe."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from apps.catalog.demo import demo_catalog_seed
from apps.catalog.sync import catalog_sync
from apps.checkout.models import BillingCustomer, CheckoutSession
from tests.checkout.conftest import checkout_body, counts
from tests.conftest import Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


def _assert_rejected(tenant: Tenant, body: dict[str, Any], field: str, client: stripe.StripeClient) -> None:
    before = counts(client)
    response = tenant.client().post("/api/v1/checkout/session", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()
    assert counts(client) == before
    assert not CheckoutSession.objects.exists()
    assert not BillingCustomer.objects.exists()


def test_an_unknown_price_is_400(alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient) -> None:
    _assert_rejected(alice, checkout_body(alice, "price_does_not_exist"), "price_id", stripe_client)


def test_another_projects_price_is_400(
    alice: Tenant, bob: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    bobs = {key.removeprefix("bravo-"): price for key, price, _ in demo_catalog_seed(project=bob.project)}
    _assert_rejected(alice, checkout_body(alice, bobs["pro-monthly"]), "price_id", stripe_client)


def test_an_inactive_price_is_400(alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient) -> None:
    stripe_client.v1.prices.update(catalog["pro-monthly"], params={"active": False})
    catalog_sync(project=alice.project)
    _assert_rejected(alice, checkout_body(alice, catalog["pro-monthly"]), "price_id", stripe_client)


@pytest.mark.parametrize("field", ["success_url", "cancel_url"])
@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/billing",
        "https://alpha.example.evil.io/billing",
        "https://user@alpha.example/x",
        "http://alpha.example/",
    ],
)
def test_a_url_outside_the_allowlist_is_400(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient, field: str, url: str
) -> None:
    _assert_rejected(alice, checkout_body(alice, catalog["pro-monthly"], **{field: url}), field, stripe_client)


@pytest.mark.parametrize(
    ("mode", "lookup_key"),
    [("rent", "pro-monthly"), ("payment", "pro-monthly"), ("subscription", "lifetime-export")],
)
def test_a_bad_mode_is_400(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient, mode: str, lookup_key: str
) -> None:
    _assert_rejected(alice, checkout_body(alice, catalog[lookup_key], mode=mode), "mode", stripe_client)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"trial_days": 0}, "trial_days"),
        ({"metadata": {"project": "bravo"}}, "metadata"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
        ({"user_id": ""}, "user_id"),
    ],
)
def test_other_invalid_fields_are_400(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient, override: dict[str, Any], field: str
) -> None:
    _assert_rejected(alice, checkout_body(alice, catalog["pro-monthly"], **override), field, stripe_client)


def test_trial_days_in_payment_mode_is_400(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    body = checkout_body(alice, catalog["lifetime-export"], mode="payment", trial_days=7)
    _assert_rejected(alice, body, "trial_days", stripe_client)


def test_another_projects_id_in_the_body_is_403(alice: Tenant, bob: Tenant, catalog: dict[str, str]) -> None:
    body = checkout_body(alice, catalog["pro-monthly"], project_id=bob.project.pk)
    response = alice.client().post("/api/v1/checkout/session", body, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Project ID does not match"}


def test_a_key_without_checkout_write_is_403(catalog: dict[str, str], alice: Tenant) -> None:
    from apps.projects.services import api_key_create, app_create

    reader, _ = app_create(project=alice.project, name="reader", scopes=["entitlements:read"])
    _, raw = api_key_create(app=reader)
    api = alice.client()
    api.credentials(HTTP_X_API_KEY=raw)
    response = api.post("/api/v1/checkout/session", checkout_body(alice, catalog["pro-monthly"]), format="json")
    assert response.status_code == 403
