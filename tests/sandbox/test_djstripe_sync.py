"""dj-stripe's own sync command works against the sandbox, as it would against Stripe."""

from __future__ import annotations

import pytest
import requests
import stripe
from django.core.management import call_command
from djstripe import models as djstripe_models

from stripe_sandbox.testing import SandboxProcess

MODELS = ["Product", "Price", "Customer", "Subscription", "Invoice", "Charge", "PaymentIntent"]


@pytest.mark.django_db
def test_djstripe_sync_models_succeeds_against_the_sandbox(
    sandbox: SandboxProcess, client: stripe.StripeClient, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dj-stripe applies STRIPE_API_HOST to the SDK once, at import; point the SDK at this sandbox.
    monkeypatch.setattr(stripe, "api_base", sandbox.base_url)
    settings.STRIPE_TEST_SECRET_KEY = sandbox.api_key  # type: ignore[attr-defined]

    product = client.v1.products.create(params={"name": "Pro", "metadata": {"project": "demo"}})
    price = client.v1.prices.create(
        params={"product": product.id, "unit_amount": 1500, "currency": "usd", "recurring": {"interval": "month"}}
    )
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://127.0.0.1:9/ok",
            "cancel_url": "http://127.0.0.1:9/no",
        }
    )
    assert session.url is not None
    paid = requests.post(
        f"{session.url}/pay", data={"card_number": "4242424242424242"}, allow_redirects=False, timeout=10
    )
    assert paid.status_code == 303

    call_command("djstripe_sync_models", *MODELS)

    assert djstripe_models.Product.objects.get(id=product.id).name == "Pro"
    assert djstripe_models.Price.objects.get(id=price.id).unit_amount == 1500
    subscription = djstripe_models.Subscription.objects.get()
    assert subscription.stripe_data["status"] == "active"
    assert djstripe_models.Invoice.objects.count() == 1
    assert djstripe_models.Charge.objects.get().stripe_data["amount_captured"] == 1500
    assert djstripe_models.PaymentIntent.objects.count() == 1
