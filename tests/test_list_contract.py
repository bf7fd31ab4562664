"""The list contract (API.md "Lists"), one test suite for every list endpoint.

`?limit=` is 1 to 200 (default 50), `?cursor=` is opaque, a page is
`{"results": [...], "next_cursor": "..." | null}`, and a bad limit or cursor is a 400 in the one
wording that docs/api.md documents. Every list endpoint is in LIST_ENDPOINTS with a way to fill it;
a list operation in the schema that is in neither LIST_ENDPOINTS nor NOT_PAGINATED fails
`test_every_list_endpoint_is_in_the_registry`, so that a new list cannot skip these tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from djstripe.models import Price

from apps.common.pagination import CURSOR_ERROR, DEFAULT_LIMIT, LIMIT_ERROR, MAX_LIMIT
from apps.entitlements.notifications.models import Delivery, Notification, NotificationEndpoint
from tests.conftest import Tenant
from tests.factories import (
    CatalogProductFactory,
    CheckoutSessionFactory,
    DiscrepancyFactory,
    InvoiceFactory,
    ReconciliationRunFactory,
    StripePriceFactory,
    StripeProductFactory,
    invoice_with_lines,
)

pytestmark = pytest.mark.django_db


# --- the registry ----------------------------------------------------------------------------------


def _products(tenant: Tenant, count: int) -> list[Any]:
    slug = tenant.project.slug
    rows = [
        CatalogProductFactory.create(project=tenant.project, slug=f"{slug}-{n}", name=f"P {n}") for n in range(count)
    ]
    return sorted(row.pk for row in rows)


def _prices(tenant: Tenant, count: int) -> list[Any]:
    slug = tenant.project.slug
    product_id = f"prod_{slug}"
    stripe_product = StripeProductFactory.create(id=product_id, stripe_name=slug)
    CatalogProductFactory.create(project=tenant.project, slug=slug, name=slug, stripe_product_id=product_id)
    # Mixed case, so that an order that is not the database's would show.
    ids = [f"price_{slug}_{'aB'[n % 2]}{n:03d}" for n in range(count)]
    for price_id in ids:
        StripePriceFactory.create(id=price_id, product=stripe_product, active=True, unit_amount=100, recurring=None)
    # In the database's order (its collation), which is the list's.
    return list(Price.objects.filter(id__in=ids).order_by("id").values_list("id", flat=True))


def _hosted_sessions(tenant: Tenant, count: int) -> list[Any]:
    invoice = invoice_with_lines(project=tenant.project, status="open")
    rows = [
        CheckoutSessionFactory.create(
            project=tenant.project, customer=invoice.customer, user_id=invoice.user_id, mode="payment", invoice=invoice
        )
        for _ in range(count)
    ]
    return sorted((row.pk for row in rows), reverse=True)  # newest first


def _invoices(tenant: Tenant, count: int) -> list[Any]:
    rows = [InvoiceFactory.create(customer__project=tenant.project) for _ in range(count)]
    return sorted((row.pk for row in rows), reverse=True)  # newest first


def _reconciliation_runs(tenant: Tenant, count: int) -> list[Any]:
    rows = [ReconciliationRunFactory.create(project=tenant.project) for _ in range(count)]
    return sorted((row.pk for row in rows), reverse=True)  # newest first


def _discrepancies(tenant: Tenant, count: int) -> list[Any]:
    run = ReconciliationRunFactory.create(project=tenant.project)
    rows = [DiscrepancyFactory.create(run=run) for _ in range(count)]
    return sorted((row.pk for row in rows), reverse=True)  # newest first


def _notification_endpoints(tenant: Tenant, count: int) -> list[Any]:
    # Rows, not the service: the service caps an app at 10 endpoints, and the default page is 50.
    slug = tenant.project.slug
    rows = [
        NotificationEndpoint.objects.create(app=tenant.app, url=f"https://{slug}.example/{n}") for n in range(count)
    ]
    return sorted(row.pk for row in rows)


def _log_endpoint(tenant: Tenant) -> NotificationEndpoint:
    """The endpoint whose delivery log is listed (one per tenant)."""
    endpoint, _ = NotificationEndpoint.objects.get_or_create(
        app=tenant.app, url=f"https://{tenant.project.slug}.example/log"
    )
    return endpoint


def _deliveries(tenant: Tenant, count: int) -> list[Any]:
    endpoint = _log_endpoint(tenant)
    notifications = Notification.objects.bulk_create(
        Notification(project=tenant.project, type="entitlements.updated", data={}) for _ in range(count)
    )
    rows = Delivery.objects.bulk_create(Delivery(notification=n, endpoint=endpoint) for n in notifications)
    return sorted((row.pk for row in rows), reverse=True)  # newest first


def _no_params(tenant: Tenant) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ListEndpoint:
    path: str  # as the schema names it, with its path parameters
    fill: Callable[[Tenant, int], list[Any]]  # creates `count` items of the tenant, answers their keys in order
    key: str  # the field of a result that fill() answered
    params: Callable[[Tenant], dict[str, Any]] = _no_params  # the path's parameters for a tenant

    def url(self, tenant: Tenant) -> str:
        return self.path.format(**self.params(tenant))


LIST_ENDPOINTS: dict[str, ListEndpoint] = {
    "catalog_prices_list": ListEndpoint("/api/v1/catalog/prices", _prices, "price_id"),
    "product_list": ListEndpoint("/api/v1/products", _products, "id"),
    "billing_session_list": ListEndpoint("/api/v1/billing/sessions", _hosted_sessions, "id"),
    "invoice_list": ListEndpoint("/api/v1/billing/invoices", _invoices, "id"),
    "reconciliation_run_list": ListEndpoint("/api/v1/billing/reconciliation/runs", _reconciliation_runs, "id"),
    "reconciliation_discrepancy_list": ListEndpoint(
        "/api/v1/billing/reconciliation/discrepancies", _discrepancies, "id"
    ),
    "notification_endpoint_list": ListEndpoint(
        "/api/v1/apps/{app_id}/endpoints", _notification_endpoints, "id", lambda t: {"app_id": t.app.pk}
    ),
    "notification_endpoint_delivery_list": ListEndpoint(
        "/api/v1/apps/{app_id}/endpoints/{endpoint_id}/deliveries",
        _deliveries,
        "id",
        lambda t: {"app_id": t.app.pk, "endpoint_id": _log_endpoint(t).pk},
    ),
}

# GET operations that answer a collection but are not paginated lists, and why.
NOT_PAGINATED = {
    # API.md fixes its shape: {"entitlements": [...]}, a user's entitlements (bounded by the project's features).
    "entitlements_list",
}


def _schema(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema: dict[str, Any] = json.loads(response.content)
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def _looks_like_a_list(schema: dict[str, Any], operation: dict[str, Any]) -> bool:
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    content = operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
    body = _resolve(schema, content.get("schema", {}))
    fields = set(body.get("properties", {}))
    return (
        bool(names & {"limit", "cursor"})
        or "next_cursor" in fields  # not "results": a replay run has per-event results
        or body.get("type") == "array"
        or operation["operationId"].endswith("_list")
    )


def test_every_list_endpoint_is_in_the_registry(client: Client) -> None:
    schema = _schema(client)
    lists = {
        op["operationId"]: path
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method == "get" and _looks_like_a_list(schema, op)
    }
    assert set(lists) - NOT_PAGINATED == set(LIST_ENDPOINTS), "add the new list to LIST_ENDPOINTS"
    for operation_id, endpoint in LIST_ENDPOINTS.items():
        assert lists[operation_id] == endpoint.path
        params = {p["name"]: p for p in schema["paths"][endpoint.path]["get"]["parameters"]}
        assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}
        assert params["cursor"]["schema"]["minLength"] == 1


def test_the_one_wording_is_the_documented_one() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    assert json.dumps({"limit": [LIMIT_ERROR]}, separators=(",", ":")) in guide
    assert json.dumps({"cursor": [CURSOR_ERROR]}, separators=(",", ":")) in guide


# --- the contract, per endpoint ----------------------------------------------------------------------

endpoints = pytest.mark.parametrize("endpoint", list(LIST_ENDPOINTS.values()), ids=list(LIST_ENDPOINTS))


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@endpoints
@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "1.0", "", " 5", "0005000", "9" * 5000])
def test_a_limit_out_of_bounds_is_400(alice: Tenant, endpoint: ListEndpoint, limit: str) -> None:
    response = alice.client().get(endpoint.url(alice), {"limit": limit})
    assert response.status_code == 400
    assert response.json() == {"limit": [LIMIT_ERROR]}


@endpoints
@pytest.mark.parametrize(
    "cursor",
    [
        "",  # the first page has no cursor: omit the parameter
        "zzz",
        "!!!",
        "\ufffd",
        "aWQ6MTI",  # the catalog's old cursor ("id:12")
        _b64("p=1") + "=",  # padded: not as handed out
        _b64("x=1"),
        _b64("r=1&p=1"),  # reverse: there are no previous pages
        _b64("o=5000&p=1"),  # an offset past the cut-off
        _b64("p="),
        _b64("p=1&p=2"),
        _b64("p=\x00"),
    ],
)
def test_a_malformed_cursor_is_400(alice: Tenant, endpoint: ListEndpoint, cursor: str) -> None:
    response = alice.client().get(endpoint.url(alice), {"cursor": cursor})
    assert response.status_code == 400
    assert response.json() == {"cursor": [CURSOR_ERROR]}


def test_a_cursor_position_the_sort_key_cannot_hold_is_400(alice: Tenant) -> None:
    # Products are sorted by their integer id: a forged position that is not one is refused, not a 500.
    response = alice.client().get(LIST_ENDPOINTS["product_list"].url(alice), {"cursor": _b64("p=abc")})
    assert response.status_code == 400
    assert response.json() == {"cursor": [CURSOR_ERROR]}


@endpoints
def test_the_smallest_and_the_largest_limit_are_accepted(alice: Tenant, endpoint: ListEndpoint) -> None:
    keys = endpoint.fill(alice, 3)
    api = alice.client()
    one = api.get(endpoint.url(alice), {"limit": "1"})
    assert one.status_code == 200
    assert [r[endpoint.key] for r in one.json()["results"]] == keys[:1] and one.json()["next_cursor"]
    most = api.get(endpoint.url(alice), {"limit": str(MAX_LIMIT)})
    assert most.status_code == 200
    assert most.json() == {"results": most.json()["results"], "next_cursor": None}
    assert [r[endpoint.key] for r in most.json()["results"]] == keys


@endpoints
def test_the_default_page_is_fifty(alice: Tenant, endpoint: ListEndpoint) -> None:
    keys = endpoint.fill(alice, DEFAULT_LIMIT + 1)
    body = alice.client().get(endpoint.url(alice)).json()
    assert [r[endpoint.key] for r in body["results"]] == keys[:DEFAULT_LIMIT]
    rest = alice.client().get(endpoint.url(alice), {"cursor": body["next_cursor"]}).json()
    assert [r[endpoint.key] for r in rest["results"]] == keys[DEFAULT_LIMIT:] and rest["next_cursor"] is None


@endpoints
@pytest.mark.parametrize("limit", [1, 2])
def test_walking_the_pages_sees_every_item_once_and_ends_with_null(
    alice: Tenant, bob: Tenant, endpoint: ListEndpoint, limit: int
) -> None:
    keys = endpoint.fill(alice, 5)
    endpoint.fill(bob, 2)  # another project's items are never on alice's pages
    api, seen, pages, cursor = alice.client(), [], 0, None
    while True:
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        response = api.get(endpoint.url(alice), query)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"results", "next_cursor"}
        assert 1 <= len(body["results"]) <= limit
        seen += [r[endpoint.key] for r in body["results"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor.isascii() and cursor.replace("-", "").replace("_", "").isalnum()
    assert seen == keys  # in order, no duplicates, no omissions
    assert pages == -(-len(keys) // limit)


@endpoints
def test_an_empty_list_is_one_page(alice: Tenant, endpoint: ListEndpoint) -> None:
    assert alice.client().get(endpoint.url(alice)).json() == {"results": [], "next_cursor": None}
