"""Objects made at the Stripe sandbox through the official SDK, for tests that need Stripe to hold them."""

from __future__ import annotations

from typing import Any


def sandbox_subscription(stripe_client: Any, *, user_id: str) -> tuple[str, str]:
    """(subscription id, price id) of an active subscription at the sandbox."""
    metadata = {"project": "alpha", "user_id": user_id}
    customer = stripe_client.v1.customers.create(params={"metadata": metadata})
    price = stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "month"},
            "product_data": {"name": "P"},
        }
    )
    stripe_client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    sub = stripe_client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "default_payment_method": "pm_card_visa",
            "metadata": metadata,
        }
    )
    return sub.id, price.id
