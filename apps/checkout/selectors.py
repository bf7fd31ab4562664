"""Reads of customers and checkout sessions (the webhooks' routing and fetch steps use these)."""

from __future__ import annotations

from apps.checkout.models import BillingCustomer, CheckoutSession


def customer_by_stripe_id(*, stripe_customer_id: str) -> BillingCustomer | None:
    """Our customer row (with its project) for a Stripe customer, or None when it is not ours."""
    return BillingCustomer.objects.select_related("project").filter(stripe_customer_id=stripe_customer_id).first()


def checkout_session_price_id(*, stripe_session_id: str) -> str | None:
    """The price our row of a Stripe checkout session was created for; None when we have no row
    (a session made outside the service, whose line items only Stripe knows)."""
    return (
        CheckoutSession.objects.filter(stripe_session_id=stripe_session_id)
        .values_list("stripe_price_id", flat=True)
        .first()
    )
