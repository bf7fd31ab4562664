"""Checkout through our API, paid on the sandbox's hosted page by a plain form post."""

from __future__ import annotations

import pytest
import stripe

from apps.checkout.models import BillingCustomer, CheckoutSession
from tests.checkout.conftest import checkout_body, pay_on_hosted_page
from tests.conftest import Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


def test_a_subscription_checkout_is_paid_and_the_sandbox_holds_a_routed_subscription(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    response = alice.client().post(
        "/api/v1/checkout/session",
        checkout_body(alice, catalog["pro-monthly"], trial_days=None, metadata={"campaign": "spring"}),
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["session_id"].startswith("cs_")
    assert body["expires_at"].endswith("Z")

    paid = pay_on_hosted_page(body["checkout_url"])
    assert paid.status_code == 303
    assert paid.headers["Location"] == "https://alpha.example/billing/success"

    subscriptions = stripe_client.v1.subscriptions.list().data
    assert len(subscriptions) == 1
    subscription = subscriptions[0]
    assert subscription.status == "active"
    assert subscription.metadata is not None
    assert subscription.metadata["project"] == "alpha"
    assert subscription.metadata["user_id"] == "user_42"
    assert subscription.metadata["campaign"] == "spring"
    customer = stripe_client.v1.customers.retrieve(str(subscription.customer))
    assert customer.metadata is not None
    assert customer.metadata["project"] == "alpha"
    assert customer.metadata["user_id"] == "user_42"
    assert customer.metadata["project_id"] == str(alice.project.pk)

    session = CheckoutSession.objects.get(stripe_session_id=body["session_id"])
    assert session.status == CheckoutSession.Status.OPEN  # completion arrives by webhook
    assert session.customer.stripe_customer_id == customer.id


def test_a_trial_checkout_starts_a_trialing_subscription(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    response = alice.client().post(
        "/api/v1/checkout/session", checkout_body(alice, catalog["pro-annual"], trial_days=14), format="json"
    )
    assert response.status_code == 201
    assert pay_on_hosted_page(response.json()["checkout_url"]).status_code == 303
    (subscription,) = stripe_client.v1.subscriptions.list().data
    assert subscription.status == "trialing"
    assert subscription.trial_end is not None


def test_a_payment_checkout_is_paid_and_the_payment_is_routed(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    response = alice.client().post(
        "/api/v1/checkout/session",
        checkout_body(alice, catalog["lifetime-export"], mode="payment", user_id="user_7"),
        format="json",
    )
    assert response.status_code == 201, response.json()
    paid = pay_on_hosted_page(response.json()["checkout_url"])
    assert paid.status_code == 303
    assert paid.headers["Location"] == "https://alpha.example/billing/success"

    (intent,) = stripe_client.v1.payment_intents.list().data
    assert intent.status == "succeeded"
    assert intent.amount == 4900
    assert intent.metadata is not None
    assert intent.metadata["project"] == "alpha"
    assert intent.metadata["user_id"] == "user_7"
    assert stripe_client.v1.subscriptions.list().data == []
    customer = stripe_client.v1.customers.retrieve(str(intent.customer))
    assert customer.metadata is not None
    assert customer.metadata["user_id"] == "user_7"


def test_the_customer_is_created_once_and_reused(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    api = alice.client()
    for _ in range(3):
        assert (
            api.post(
                "/api/v1/checkout/session", checkout_body(alice, catalog["pro-monthly"]), format="json"
            ).status_code
            == 201
        )
    assert len(stripe_client.v1.customers.list().data) == 1
    assert BillingCustomer.objects.filter(project=alice.project, user_id="user_42").count() == 1
    assert len(stripe_client.v1.checkout.sessions.list().data) == 3


def test_the_portal_answers_404_until_the_user_has_a_customer_then_opens(
    alice: Tenant, catalog: dict[str, str]
) -> None:
    api = alice.client()
    portal_body = {"user_id": "user_42", "project_id": alice.project.pk, "return_url": "https://alpha.example/account"}
    missing = api.post("/api/v1/portal/session", portal_body, format="json")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "This user has no Stripe customer yet: complete a checkout first."}

    assert (
        api.post("/api/v1/checkout/session", checkout_body(alice, catalog["pro-monthly"]), format="json").status_code
        == 201
    )
    opened = api.post("/api/v1/portal/session", portal_body, format="json")
    assert opened.status_code == 201
    assert "/portal/" in opened.json()["portal_url"]


def test_the_portal_refuses_a_return_url_outside_the_allowlist(alice: Tenant, catalog: dict[str, str]) -> None:
    body = {"user_id": "user_42", "project_id": alice.project.pk, "return_url": "https://evil.example/account"}
    response = alice.client().post("/api/v1/portal/session", body, format="json")
    assert response.status_code == 400
    assert "return_url" in response.json()
