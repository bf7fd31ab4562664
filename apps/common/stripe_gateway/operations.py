"""The Stripe operations the service performs. Callers pass plain values and get plain dicts.

Writes take an `idempotency_key` derived by the caller from its own row id, so a retried call (ours,
the caller's or a redelivered task's) never creates a second object at Stripe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import stripe

from apps.common.stripe_gateway.client import as_dict, call_stripe, stripe_client

_PAGE_SIZE = 100


def _write_options(idempotency_key: str) -> stripe.RequestOptions:
    return {"idempotency_key": idempotency_key}


def _iterate(operation: str, fetch_page: Callable[[Any], Any], params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object of a list endpoint, page by page, each page retried on its own."""
    cursor: str | None = None
    while True:
        page_params = {**params, "limit": _PAGE_SIZE, **({"starting_after": cursor} if cursor else {})}
        page = call_stripe(operation, lambda p=page_params: fetch_page(p))  # type: ignore[misc]
        items = [as_dict(item) for item in page.data]
        yield from items
        if not page.has_more or not items:
            return
        cursor = items[-1]["id"]


# --- customers ----------------------------------------------------------------------------------
def customer_create(*, project_slug: str, idempotency_key: str, metadata: dict[str, str]) -> dict[str, Any]:
    client = stripe_client(project_slug=project_slug)
    return as_dict(
        call_stripe(
            "customer.create",
            lambda: client.v1.customers.create(params={"metadata": metadata}, options=_write_options(idempotency_key)),
        )
    )


# --- checkout and portal ------------------------------------------------------------------------
def checkout_session_create(*, project_slug: str, idempotency_key: str, params: dict[str, Any]) -> dict[str, Any]:
    client = stripe_client(project_slug=project_slug)
    return as_dict(
        call_stripe(
            "checkout_session.create",
            lambda: client.v1.checkout.sessions.create(
                params=cast(Any, params), options=_write_options(idempotency_key)
            ),
        )
    )


def portal_session_create(
    *, project_slug: str, idempotency_key: str, customer_id: str, return_url: str
) -> dict[str, Any]:
    client = stripe_client(project_slug=project_slug)
    return as_dict(
        call_stripe(
            "portal_session.create",
            lambda: client.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url}, options=_write_options(idempotency_key)
            ),
        )
    )


# --- catalog ------------------------------------------------------------------------------------
def product_create(*, project_slug: str, idempotency_key: str, params: dict[str, Any]) -> dict[str, Any]:
    client = stripe_client(project_slug=project_slug)
    return as_dict(
        call_stripe(
            "product.create",
            lambda: client.v1.products.create(params=cast(Any, params), options=_write_options(idempotency_key)),
        )
    )


def price_create(*, project_slug: str, idempotency_key: str, params: dict[str, Any]) -> dict[str, Any]:
    client = stripe_client(project_slug=project_slug)
    return as_dict(
        call_stripe(
            "price.create",
            lambda: client.v1.prices.create(params=cast(Any, params), options=_write_options(idempotency_key)),
        )
    )


def products_iter(*, project_slug: str | None) -> Iterator[dict[str, Any]]:
    client = stripe_client(project_slug=project_slug)
    return _iterate("product.list", lambda p: client.v1.products.list(params=p), {})


def prices_iter(*, project_slug: str | None, product_id: str | None = None) -> Iterator[dict[str, Any]]:
    client = stripe_client(project_slug=project_slug)
    params: dict[str, Any] = {"product": product_id} if product_id else {}
    return _iterate("price.list", lambda p: client.v1.prices.list(params=p), params)


def object_retrieve(*, project_slug: str | None, object_type: str, object_id: str) -> dict[str, Any]:
    """A fresh copy of one object, for when an event's snapshot is not enough."""
    client = stripe_client(project_slug=project_slug)
    services: dict[str, Any] = {
        "customer": client.v1.customers,
        "subscription": client.v1.subscriptions,
        "invoice": client.v1.invoices,
        "charge": client.v1.charges,
        "payment_intent": client.v1.payment_intents,
        "product": client.v1.products,
        "price": client.v1.prices,
        "checkout.session": client.v1.checkout.sessions,
    }
    service = services[object_type]
    return as_dict(call_stripe(f"{object_type}.retrieve", lambda: service.retrieve(object_id)))


# --- webhook endpoints (the local sandbox registration in `make run`) ---------------------------
def webhook_endpoint_replace(*, url: str, enabled_events: list[str]) -> dict[str, Any]:
    """Deletes endpoints already registered for `url` and registers it anew; the answer holds the secret."""
    client = stripe_client(project_slug=None)
    existing = _iterate("webhook_endpoint.list", lambda p: client.v1.webhook_endpoints.list(params=p), {})
    for endpoint in list(existing):
        if endpoint.get("url") == url:
            call_stripe("webhook_endpoint.delete", lambda e=endpoint: client.v1.webhook_endpoints.delete(e["id"]))  # type: ignore[misc]
    created: stripe.WebhookEndpoint = call_stripe(
        "webhook_endpoint.create",
        lambda: client.v1.webhook_endpoints.create(params={"url": url, "enabled_events": enabled_events}),  # type: ignore[typeddict-item]
    )
    return as_dict(created)


def checkout_session_line_items(*, project_slug: str | None, session_id: str) -> list[dict[str, Any]]:
    """A session's line items (not in its snapshot), for sessions we did not create ourselves."""
    client = stripe_client(project_slug=project_slug)
    return list(
        _iterate(
            "checkout_session.line_items",
            lambda p: client.v1.checkout.sessions.line_items.list(session_id, params=p),
            {},
        )
    )
