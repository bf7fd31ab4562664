"""The one module that talks to Stripe. Nothing else in apps/ imports `stripe`.

It pins STRIPE_API_VERSION, resolves the secret key per project (credentials.py), retries within a
time budget (client.py), and raises StripeInvalidRequest (400) or StripeUnavailable (502).
"""

from apps.common.stripe_gateway.client import djstripe_mirror
from apps.common.stripe_gateway.errors import StripeInvalidRequest, StripeUnavailable
from apps.common.stripe_gateway.operations import (
    checkout_session_create,
    checkout_session_expire,
    checkout_session_line_items,
    checkout_session_retrieve,
    customer_create,
    events_page,
    list_page,
    object_find,
    object_retrieve,
    portal_session_create,
    price_create,
    prices_iter,
    product_create,
    products_iter,
    webhook_endpoint_replace,
)

__all__ = [
    "StripeInvalidRequest",
    "StripeUnavailable",
    "checkout_session_create",
    "checkout_session_expire",
    "checkout_session_line_items",
    "checkout_session_retrieve",
    "customer_create",
    "djstripe_mirror",
    "events_page",
    "list_page",
    "object_find",
    "object_retrieve",
    "portal_session_create",
    "price_create",
    "prices_iter",
    "product_create",
    "products_iter",
    "webhook_endpoint_replace",
]
