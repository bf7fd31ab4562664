"""Broken object-level authorization, swept across the whole API.

Bob's key, aimed at anything of Alice's, gets a 403 (her project id) or a 404 (her objects), and no
answer carries her data. Every /api/v1/ route must have a case here: a new route without one fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from apps.catalog.models import CatalogProduct
from apps.checkout.models import CheckoutSession, Invoice
from apps.entitlements.grants import grant_create
from apps.entitlements.notifications.models import Delivery, Notification, NotificationEndpoint
from apps.entitlements.notifications.services import endpoint_create
from apps.entitlements.services import revenue_payment_record
from apps.reconciliation.models import Discrepancy
from apps.webhooks.replays import replay_run
from tests.conftest import Tenant, committed
from tests.factories import (
    CatalogProductFactory,
    CatalogSyncRunFactory,
    CheckoutSessionFactory,
    DiscrepancyFactory,
    PriceFeatureFactory,
    ProcessorEventFactory,
    ReconciliationRunFactory,
    invoice_with_lines,
)

pytestmark = pytest.mark.django_db

# Routes that are not about a project's objects. scheduler-health reports the service's periodic
# jobs, the same for every `ops` key: it holds no project's data.
NOT_TENANT_SCOPED = {"metrics-alias", "whoami", "webhooks-stripe", "webhooks-stripe-alias", "scheduler-health"}
# The fulfillment worker's health and metrics: the service's one worker, the same for every `ops` key.
NOT_TENANT_SCOPED |= {"fulfillment-health", "fulfillment-metrics"}


def _api_route_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and (prefix + str(pattern.pattern)).startswith("api/v1/"):
                names.add(str(pattern.name))

    walk(get_resolver().url_patterns, "")
    return names


@pytest.fixture
def alices_things(alice: Tenant) -> dict[str, Any]:
    project = alice.project
    product = CatalogProductFactory.create(project=project, slug="secret-plan", name="Secret plan")
    PriceFeatureFactory.create(project=project, stripe_price_id="price_alice", feature_code="pro")
    with committed():
        grant_create(project=project, user_id="u1", feature_code="pro", granted_by="s", reason="r")
    revenue_payment_record(
        project=project, payment_intent_id="pi_a", amount=12345, currency="usd", occurred_at=product.created_at
    )
    event = ProcessorEventFactory.create(
        stripe_event_id="evt_alice",
        type="test.x",
        created=product.created_at,
        payload={},
        status="processed",
        project=project,
    )
    run = replay_run(project_id=project.pk, requested_by="ops", event_ids=["evt_alice"], dry_run=True)
    sync_run = CatalogSyncRunFactory.create(project=project, status="succeeded", counts={"products": 12345})
    invoice = invoice_with_lines(project=project, user_id="u1", status="open")
    hosted = CheckoutSessionFactory.create(
        project=project,
        customer=invoice.customer,
        user_id="u1",
        mode="payment",
        invoice=invoice,
        stripe_session_id="cs_alice_hosted",
    )
    recon_run = ReconciliationRunFactory.create(project=project, counts={"subscription": {"checked": 12345}})
    discrepancy = DiscrepancyFactory.create(run=recon_run, stripe_id="sub_alice_drift", user_id="u1")
    # Created after the grant: its notification would otherwise be delivered (eagerly) on commit.
    endpoint = endpoint_create(app=alice.app, url="https://alpha.example/secret-hook", actor="test")
    notification = Notification.objects.create(project=project, type="entitlements.updated", user_id="u1", data={})
    Delivery.objects.create(notification=notification, endpoint=endpoint, status="failed")
    return {
        "endpoint": endpoint.pk,
        "endpoint_secret": endpoint.secret,
        "notification": notification.pk,
        "project": project.pk,
        "recon_run": recon_run.pk,
        "discrepancy": discrepancy.pk,
        "app": alice.app.pk,
        "product": product.pk,
        "run": run.pk,
        "event": event.stripe_event_id,
        "sync_run": sync_run.pk,
        "invoice": invoice.pk,
        "hosted_session": hosted.pk,
        "hosted_updated_at": hosted.updated_at.isoformat().replace("+00:00", "Z"),
    }


def _cases(a: dict[str, Any]) -> dict[str, list[tuple[str, str, dict[str, Any] | None, set[int]]]]:
    p = a["project"]
    return {
        "project-detail": [("get", f"/api/v1/projects/{p}", None, {403})],
        "app-detail": [("get", f"/api/v1/apps/{a['app']}", None, {404})],
        "products": [("post", "/api/v1/products", {"project_id": p, "slug": "x", "name": "X"}, {403})],
        "product-update": [("patch", f"/api/v1/products/{a['product']}", {"name": "Pwned"}, {404})],
        "product-options": [("put", f"/api/v1/products/{a['product']}/options", {}, {404})],
        "product-detail": [("get", "/api/v1/products/secret-plan", None, {404})],
        "catalog-price-feature": [("put", "/api/v1/catalog/prices/price_alice/feature", {"feature_code": "x"}, {404})],
        "checkout-session-create": [
            (
                "post",
                "/api/v1/checkout/session",
                {
                    "project_id": p,
                    "user_id": "u1",
                    "price_id": "price_alice",
                    "mode": "subscription",
                    "success_url": "https://alpha.example/",
                    "cancel_url": "https://alpha.example/",
                },
                {403},
            )
        ],
        "portal-session-create": [
            (
                "post",
                "/api/v1/portal/session",
                {"project_id": p, "user_id": "u1", "return_url": "https://alpha.example/"},
                {403},
            )
        ],
        "replay-create": [("post", "/api/v1/billing/replays", {"project_id": p, "event_ids": [a["event"]]}, {403})],
        "replay-detail": [("get", f"/api/v1/billing/replays/{a['run']}", None, {404})],
        "entitlements-list": [("get", f"/api/v1/entitlements?user_id=u1&project_id={p}", None, {403})],
        "entitlements-check": [
            ("get", f"/api/v1/entitlements/check?user_id=u1&project_id={p}&feature_code=pro", None, {403})
        ],
        "grant-create": [
            (
                "post",
                "/api/v1/admin/grant",
                {"project_id": p, "user_id": "u1", "feature_code": "pro", "granted_by": "b", "reason": "r"},
                {403},
            )
        ],
        "grant-revoke": [
            (
                "post",
                "/api/v1/admin/revoke",
                {"project_id": p, "user_id": "u1", "feature_code": "pro", "revoked_by": "b", "reason": "r"},
                {403},
            )
        ],
        "metrics-subscriptions": [("get", f"/api/v1/metrics/project/{p}/subscriptions", None, {403})],
        "metrics-revenue": [("get", f"/api/v1/metrics/project/{p}/revenue", None, {403})],
        "invoices": [
            # The list answers bob's own (empty) invoices: checked for leaks below.
            ("get", "/api/v1/billing/invoices", None, {200}),
            (
                "post",
                "/api/v1/billing/invoices",
                {"project_id": p, "user_id": "u1", "currency": "usd", "lines": [{"product_id": a["product"]}]},
                {403},
            ),
        ],
        "invoice-detail": [("get", f"/api/v1/billing/invoices/{a['invoice']}", None, {404})],
        "invoice-void": [("post", f"/api/v1/billing/invoices/{a['invoice']}/void", {}, {404})],
        "invoice-mark-uncollectible": [
            ("post", f"/api/v1/billing/invoices/{a['invoice']}/mark_uncollectible", {}, {404})
        ],
        # Lists answer bob's own (empty) data: checked for leaks below.
        "catalog-prices": [("get", "/api/v1/catalog/prices", None, {200})],
        "catalog-sync-run": [("get", f"/api/v1/catalog/sync/{a['sync_run']}", None, {404})],
        # Starts a run of bob's own project (202): checked for leaks below.
        "catalog-sync": [("post", "/api/v1/catalog/sync", {}, {202})],
        "invoice-checkout": [
            (
                "post",
                f"/api/v1/billing/invoices/{a['invoice']}/checkout",
                {"success_url": "https://bravo.example/", "cancel_url": "https://bravo.example/"},
                {404},
            )
        ],
        "billing-sessions": [("get", "/api/v1/billing/sessions", None, {200})],
        "billing-session-detail": [("get", f"/api/v1/billing/sessions/{a['hosted_session']}", None, {404})],
        "billing-session-regenerate": [
            (
                "post",
                f"/api/v1/billing/sessions/{a['hosted_session']}/regenerate",
                {"updated_at": a["hosted_updated_at"]},
                {404},
            )
        ],
        "reconciliation-runs": [
            # The list answers bob's own (empty) runs: checked for leaks below.
            ("get", "/api/v1/billing/reconciliation/runs", None, {200}),
            ("post", "/api/v1/billing/reconciliation/runs", {"project_id": p, "mode": "full"}, {403}),
        ],
        "reconciliation-run-detail": [("get", f"/api/v1/billing/reconciliation/runs/{a['recon_run']}", None, {404})],
        "reconciliation-discrepancies": [
            ("get", "/api/v1/billing/reconciliation/discrepancies", None, {200}),
            # Her run's id as a filter selects nothing of bob's, and shows nothing of hers.
            ("get", f"/api/v1/billing/reconciliation/discrepancies?run={a['recon_run']}", None, {200}),
        ],
        "reconciliation-discrepancy-detail": [
            ("get", f"/api/v1/billing/reconciliation/discrepancies/{a['discrepancy']}", None, {404})
        ],
        "notification-endpoints": [
            ("get", f"/api/v1/apps/{a['app']}/endpoints", None, {404}),
            ("post", f"/api/v1/apps/{a['app']}/endpoints", {"url": "https://bravo.example/hook"}, {404}),
        ],
        "notification-endpoint-detail": [
            ("get", f"/api/v1/apps/{a['app']}/endpoints/{a['endpoint']}", None, {404}),
            ("patch", f"/api/v1/apps/{a['app']}/endpoints/{a['endpoint']}", {"url": "https://bravo.example/"}, {404}),
            ("delete", f"/api/v1/apps/{a['app']}/endpoints/{a['endpoint']}", None, {404}),
        ],
        "notification-endpoint-rotate-secret": [
            ("post", f"/api/v1/apps/{a['app']}/endpoints/{a['endpoint']}/rotate_secret", {}, {404})
        ],
        "notification-endpoint-deliveries": [
            ("get", f"/api/v1/apps/{a['app']}/endpoints/{a['endpoint']}/deliveries", None, {404})
        ],
        # Her notification's id selects nothing of bob's project (202, 0 notifications): checked below.
        "fulfillment-replays": [
            ("post", "/api/v1/fulfillment/replays", {"notification_ids": [a["notification"]]}, {202})
        ],
        "reconciliation-discrepancy-resolve": [
            (
                "post",
                f"/api/v1/billing/reconciliation/discrepancies/{a['discrepancy']}/resolve",
                {"action": "ignore", "note": "not mine"},
                {404},
            )
        ],
    }


def test_every_api_route_has_a_bola_case(alices_things: dict[str, Any]) -> None:
    covered = set(_cases(alices_things)) | NOT_TENANT_SCOPED | {"products"}
    assert _api_route_names() - covered == set()


@pytest.mark.e2e
def test_bobs_key_reaches_none_of_alices_objects(
    alice: Tenant, bob: Tenant, alices_things: dict[str, Any], stripe_sandbox: Any
) -> None:
    api = bob.client()
    secrets = ["secret-plan", "price_alice", "evt_alice", "12345", "Secret plan", "cs_alice_hosted", "sub_alice_drift"]
    secrets += [alices_things["endpoint_secret"], "secret-hook"]
    for name, cases in _cases(alices_things).items():
        for method, path, body, allowed in cases:
            response = (
                getattr(api, method)(path, body, format="json") if body is not None else getattr(api, method)(path)
            )
            assert response.status_code in allowed, (name, path, response.status_code, response.content[:200])
            text = response.content.decode()
            sent = path + json.dumps(body)
            leaked = [s for s in secrets if s in text and s not in sent]  # echoing bob's own input is no leak
            assert leaked == [], (name, path, leaked)
    listing = api.get("/api/v1/products").json()
    assert listing["results"] == []
    # Nothing of Alice's changed.
    assert Discrepancy.objects.get(pk=alices_things["discrepancy"]).status == "open"
    assert CatalogProduct.objects.get(pk=alices_things["product"]).name == "Secret plan"
    assert CheckoutSession.objects.get(pk=alices_things["hosted_session"]).status == "open"
    assert Invoice.objects.get(pk=alices_things["invoice"]).status == "open"
    endpoint = NotificationEndpoint.objects.get(pk=alices_things["endpoint"])
    assert (endpoint.url, endpoint.secret) == ("https://alpha.example/secret-hook", alices_things["endpoint_secret"])
    assert Delivery.objects.get(notification_id=alices_things["notification"]).status == "failed"
    assert (
        json.loads(
            alice.client()
            .get(f"/api/v1/entitlements/check?user_id=u1&project_id={alices_things['project']}&feature_code=pro")
            .content
        )["active"]
        is True
    )
