from __future__ import annotations

from typing import Any

import pytest
import stripe
from django.core.management import call_command
from djstripe.models import Price

from apps.catalog.demo import demo_catalog_seed
from apps.catalog.models import CatalogProduct, CatalogSyncRun, PriceFeature
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant, committed, make_tenant
from tests.factories import CatalogProductFactory

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


@pytest.fixture
def seeded(alice: Tenant, stripe_sandbox: SandboxProcess) -> dict[str, str]:
    return {key.removeprefix("alpha-"): price for key, price, _ in demo_catalog_seed(project=alice.project)}


def test_prices_list_the_projects_prices_with_feature_codes(alice: Tenant, seeded: dict[str, str]) -> None:
    response = alice.client().get("/api/v1/catalog/prices")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    by_id = {p["price_id"]: p for p in body["results"]}
    assert set(by_id) == set(seeded.values())
    monthly = by_id[seeded["pro-monthly"]]
    assert monthly["unit_amount"] == 1500
    assert monthly["currency"] == "usd"
    assert monthly["recurring"] == {"interval": "month", "interval_count": 1}
    assert monthly["feature_code"] == "pro"
    lifetime = by_id[seeded["lifetime-export"]]
    assert lifetime["recurring"] is None
    assert lifetime["feature_code"] == "export"
    assert lifetime["purchase_duration_days"] is None


def test_prices_are_paginated_with_an_opaque_cursor(alice: Tenant, seeded: dict[str, str]) -> None:
    api = alice.client()
    first = api.get("/api/v1/catalog/prices?limit=2").json()
    assert len(first["results"]) == 2
    second = api.get(f"/api/v1/catalog/prices?limit=2&cursor={first['next_cursor']}").json()
    assert len(second["results"]) == 1
    assert second["next_cursor"] is None
    seen = [p["price_id"] for p in first["results"] + second["results"]]
    assert sorted(seen) == sorted(seeded.values())
    assert api.get("/api/v1/catalog/prices?limit=0").status_code == 400
    assert api.get("/api/v1/catalog/prices?limit=201").status_code == 400
    assert api.get("/api/v1/catalog/prices?cursor=%%%").status_code == 400


def test_another_project_sees_none_of_these_prices(bob: Tenant, seeded: dict[str, str]) -> None:
    assert bob.client().get("/api/v1/catalog/prices").json()["results"] == []
    response = bob.client().put(
        f"/api/v1/catalog/prices/{seeded['pro-monthly']}/feature", {"feature_code": "x"}, format="json"
    )
    assert response.status_code == 404


def test_a_price_is_mapped_to_a_feature_code(alice: Tenant, seeded: dict[str, str]) -> None:
    url = f"/api/v1/catalog/prices/{seeded['lifetime-export']}/feature"
    response = alice.client().put(url, {"feature_code": "export-v2", "purchase_duration_days": 365}, format="json")
    assert response.status_code == 200
    assert response.json()["feature_code"] == "export-v2"
    assert response.json()["purchase_duration_days"] == 365
    feature = PriceFeature.objects.get(project=alice.project, stripe_price_id=seeded["lifetime-export"])
    assert (feature.feature_code, feature.purchase_duration_days) == ("export-v2", 365)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"feature_code": "Not Valid"}, "feature_code"),
        ({"feature_code": ""}, "feature_code"),
        ({"feature_code": "pro", "purchase_duration_days": 0}, "purchase_duration_days"),
    ],
)
def test_a_bad_feature_mapping_is_400(
    alice: Tenant, seeded: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = alice.client().put(f"/api/v1/catalog/prices/{seeded['pro-monthly']}/feature", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_a_recurring_price_has_no_purchase_duration(alice: Tenant, seeded: dict[str, str]) -> None:
    url = f"/api/v1/catalog/prices/{seeded['pro-monthly']}/feature"
    response = alice.client().put(url, {"feature_code": "pro", "purchase_duration_days": 30}, format="json")
    assert response.status_code == 400
    assert "purchase_duration_days" in response.json()
    assert PriceFeature.objects.get(stripe_price_id=seeded["pro-monthly"]).purchase_duration_days is None


def test_mapping_needs_catalog_write(alice: Tenant, seeded: dict[str, str]) -> None:
    reader = make_tenant("reader", scopes=["entitlements:read"])
    reader.project = alice.project
    response = reader.client().put(
        f"/api/v1/catalog/prices/{seeded['pro-monthly']}/feature", {"feature_code": "pro"}, format="json"
    )
    assert response.status_code == 403


def test_sync_assigns_products_by_metadata_and_skips_other_apps_products(
    alice: Tenant,
    bob: Tenant,
    stripe_sandbox: SandboxProcess,
    stripe_client: stripe.StripeClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ours = stripe_client.v1.products.create(params={"name": "Team", "metadata": {"project": "alpha"}})
    stripe_client.v1.prices.create(params={"product": ours.id, "unit_amount": 900, "currency": "eur"})
    bobs = stripe_client.v1.products.create(params={"name": "Bob's", "metadata": {"project": "bravo"}})
    stranger = stripe_client.v1.products.create(params={"name": "Another app's", "metadata": {"project": "zeta"}})

    call_command("sync_catalog")
    out = capsys.readouterr().out
    assert "2 products and 1 prices synced, 1 products of no known project skipped" in out
    assert CatalogProduct.objects.get(stripe_product_id=ours.id).project == alice.project
    assert CatalogProduct.objects.get(stripe_product_id=bobs.id).project == bob.project
    assert not CatalogProduct.objects.filter(stripe_product_id=stranger.id).exists()
    assert Price.objects.filter(product__id=ours.id).count() == 1


def test_the_sync_endpoint_pulls_only_the_callers_project(
    alice: Tenant, bob: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    ours = stripe_client.v1.products.create(params={"name": "Team", "metadata": {"project": "alpha"}})
    stripe_client.v1.prices.create(
        params={"product": ours.id, "unit_amount": 900, "currency": "eur", "recurring": {"interval": "month"}}
    )
    stripe_client.v1.products.create(params={"name": "Bob's", "metadata": {"project": "bravo"}})
    with committed():  # the sync task is enqueued on commit (and runs eagerly in tests)
        response = alice.client().post("/api/v1/catalog/sync")
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "running" and accepted["counts"] == {} and accepted["finished_at"] is None
    assert accepted["project_id"] == alice.project.pk
    assert accepted["url"] == f"/api/v1/catalog/sync/{accepted['id']}" == response["Location"]
    polled = alice.client().get(accepted["url"])
    assert polled.status_code == 200
    run = polled.json()
    assert run["status"] == "succeeded"
    # Bob's product is another project's: skipped, as products of no known project are.
    assert run["counts"] == {"products": 1, "prices": 1, "skipped": 1}
    assert run["error"] == "" and run["finished_at"] is not None
    assert not CatalogProduct.objects.filter(project=bob.project).exists()
    # Another project's run is a 404; polling needs catalog:write.
    assert bob.client().get(accepted["url"]).status_code == 404
    reader = make_tenant("reader", scopes=["entitlements:read"])
    assert reader.client().get(accepted["url"]).status_code == 403
    assert reader.client().post("/api/v1/catalog/sync").status_code == 403


def test_a_sync_that_fails_at_stripe_is_a_failed_run_with_its_error(
    alice: Tenant, stripe_sandbox: SandboxProcess, settings: Any
) -> None:
    settings.STRIPE_API_HOST = "http://127.0.0.1:9"  # nothing listens there: Stripe unreachable
    settings.STRIPE_RETRY_BUDGET_SECONDS = 0.1
    with committed():  # the eager task raises inside a robust on_commit: logged, not raised here
        response = alice.client().post("/api/v1/catalog/sync")
    assert response.status_code == 202  # the request itself never talks to Stripe
    run = CatalogSyncRun.objects.get(pk=response.json()["id"])
    assert run.status == "failed"
    assert run.error.startswith("StripeUnavailable")
    assert run.finished_at is not None
    assert alice.client().get(response["Location"]).json()["error"] == run.error


def test_the_command_records_a_run(alice: Tenant, stripe_sandbox: SandboxProcess, capsys: Any) -> None:
    call_command("sync_catalog", project="alpha")
    run = CatalogSyncRun.objects.get()
    assert run.status == "succeeded" and run.project == alice.project
    assert run.requested_by.startswith("cli:")
    assert f"catalog sync #{run.pk}:" in capsys.readouterr().out


def test_a_product_assigned_in_the_admin_stays_with_its_project(
    alice: Tenant, bob: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    untagged = stripe_client.v1.products.create(params={"name": "Legacy"})
    CatalogProductFactory.create(project=bob.project, slug="legacy", name="Legacy", stripe_product_id=untagged.id)
    call_command("sync_catalog", project="bravo")
    assert CatalogProduct.objects.get(stripe_product_id=untagged.id).project == bob.project
