"""The Stripe operations the service performs. Callers pass plain values and get plain dicts.

Writes take an `idempotency_key` derived by the caller from its own row id, so a retried call (ours,
the caller's or a redelivered task's) never creates a second object at Stripe.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import stripe

from apps.common.stripe_gateway.client import as_dict, call_stripe, stripe_client
from apps.common.stripe_gateway.errors import StripeInvalidRequest

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


def checkout_session_expire(*, project_slug: str, session_id: str, idempotency_key: str) -> dict[str, Any]:
    """Expires an open Checkout session so that it can no longer be paid; Stripe answers 400 for one
    that is not open (already complete or expired), which the caller tells apart by retrieving it."""
    client = stripe_client(project_slug=project_slug)
    return as_dict(
        call_stripe(
            "checkout_session.expire",
            lambda: client.v1.checkout.sessions.expire(session_id, options=_write_options(idempotency_key)),
        )
    )


def checkout_session_retrieve(*, project_slug: str, session_id: str) -> dict[str, Any]:
    return object_retrieve(project_slug=project_slug, object_type="checkout.session", object_id=session_id)


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


# --- listing, page by page (reconciliation) -----------------------------------------------------
# A caller that paces or counts its requests passes `before_request`: it is called before every
# attempt, retries included, so a rate limit and a request count see what Stripe sees.
BeforeRequest = Callable[[], None]

LISTABLE_TYPES = ("customer", "subscription", "invoice", "charge", "payment_intent", "event")


_LIST_PATHS: dict[str, str] = {
    "customer": "/v1/customers",
    "subscription": "/v1/subscriptions",
    "invoice": "/v1/invoices",
    "charge": "/v1/charges",
    "payment_intent": "/v1/payment_intents",
    "event": "/v1/events",
}


def _listing_service(client: stripe.StripeClient, object_type: str) -> Any:
    services: dict[str, Any] = {
        "customer": client.v1.customers,
        "subscription": client.v1.subscriptions,
        "invoice": client.v1.invoices,
        "charge": client.v1.charges,
        "payment_intent": client.v1.payment_intents,
        "event": client.v1.events,
    }
    try:
        return services[object_type]
    except KeyError:
        raise ValueError(f"{object_type!r} is not listable here; one of {', '.join(LISTABLE_TYPES)}") from None


def _paced(call: Callable[[], Any], before_request: BeforeRequest | None) -> Callable[[], Any]:
    def attempt() -> Any:
        if before_request is not None:
            before_request()
        return call()

    return attempt


def list_page(
    *,
    project_slug: str | None,
    object_type: str,
    params: dict[str, Any],
    starting_after: str | None = None,
    limit: int = _PAGE_SIZE,
    before_request: BeforeRequest | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of a list endpoint (newest first): its objects and whether more follow.

    `params` are the endpoint's filters (`status`, `created`, `expand`...); the page is retried on its
    own, and StripeUnavailable after the retry budget means this page was not read.
    """
    client = stripe_client(project_slug=project_slug)
    path = _LIST_PATHS.get(object_type)
    if path is None:
        raise ValueError(f"{object_type!r} is not listable here; one of {', '.join(LISTABLE_TYPES)}")
    page_params = {**params, "limit": limit, **({"starting_after": starting_after} if starting_after else {})}
    # Read as JSON, not built into typed StripeObjects and converted back (as_dict): at 100 objects
    # a page that conversion cost ~1 ms an object, 7x the rate cap's floor for a 100k listing
    # (bench/reconciliation_full.py). raw_request keeps the client, its errors and so the retries.
    response = call_stripe(
        f"{object_type}.list", _paced(lambda: client.raw_request("get", path, **page_params), before_request)
    )
    page = json.loads(response.body)
    return list(page["data"]), bool(page["has_more"])


def events_page(
    *,
    project_slug: str | None,
    created_gte: int,
    starting_after: str | None = None,
    limit: int = _PAGE_SIZE,
    before_request: BeforeRequest | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of the account's events created at or after `created_gte` (Unix time), newest first."""
    return list_page(
        project_slug=project_slug,
        object_type="event",
        params={"created": {"gte": created_gte}},
        starting_after=starting_after,
        limit=limit,
        before_request=before_request,
    )


def object_find(
    *,
    project_slug: str | None,
    object_type: str,
    object_id: str,
    expand: list[str] | None = None,
    before_request: BeforeRequest | None = None,
) -> dict[str, Any] | None:
    """A fresh copy of one object, or None when Stripe has no such object (404).

    A deleted customer comes back as Stripe's stub (`"deleted": true`); the caller decides.
    """
    client = stripe_client(project_slug=project_slug)
    service = _listing_service(client, object_type)
    params: dict[str, Any] = {"expand": expand} if expand else {}
    try:
        found = call_stripe(
            f"{object_type}.retrieve", _paced(lambda: service.retrieve(object_id, params=params), before_request)
        )
    except StripeInvalidRequest as error:
        cause = error.__cause__
        if isinstance(cause, stripe.InvalidRequestError) and cause.http_status == 404:
            return None
        raise
    return as_dict(found)
