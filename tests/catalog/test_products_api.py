"""The product endpoints: listing with cursors, reading, creating, PATCH semantics, scopes, and
project isolation (bob's key never sees or changes alice's products)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.catalog.models import AddOn, CatalogProduct, OptionGroup
from apps.common.pagination import ListCursorPagination
from apps.projects.services import app_create
from tests.catalog.test_product_configuration import configured, full_configuration, product_of, snapshot
from tests.conftest import Tenant
from tests.factories import CatalogProductFactory, PriceFeatureFactory, StripePriceFactory, StripeProductFactory

pytestmark = pytest.mark.django_db


def create_body(**changes: Any) -> dict[str, Any]:
    return {"slug": "audit", "name": "Audit", "unit_amount": 4900, "currency": "usd"} | changes


# --- list -----------------------------------------------------------------------------------------


def test_the_list_pages_through_every_product_of_the_project_with_a_cursor(alice: Tenant, bob: Tenant) -> None:
    mine = [product_of(alice, f"p-{n}").pk for n in range(5)]
    product_of(bob, "theirs")
    client, seen, url = alice.client(), [], "/api/v1/products?limit=2"
    pages = 0
    while url:
        body = client.get(url).json()
        seen += [p["id"] for p in body["results"]]
        pages += 1
        url = f"/api/v1/products?limit=2&cursor={body['next_cursor']}" if body["next_cursor"] else ""
    assert seen == mine and pages == 3


def test_the_list_defaults_to_fifty_and_allows_two_hundred(alice: Tenant) -> None:
    for n in range(201):
        CatalogProductFactory.create(project=alice.project, slug=f"p-{n}", name="P")
    default = alice.client().get("/api/v1/products").json()
    assert len(default["results"]) == 50 and default["next_cursor"] is not None
    most = alice.client().get("/api/v1/products?limit=200").json()
    assert len(most["results"]) == 200 and most["next_cursor"] is not None


def test_the_last_page_has_no_next_cursor(alice: Tenant) -> None:
    product_of(alice)
    assert alice.client().get("/api/v1/products?limit=1").json()["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten"])
def test_a_limit_out_of_bounds_is_400(alice: Tenant, limit: str) -> None:
    response = alice.client().get(f"/api/v1/products?limit={limit}")
    assert response.status_code == 400
    assert list(response.json()) == ["limit"]


@pytest.mark.parametrize("cursor", ["!!!", "aWQ6", "bm9wZQ", "aWQ6LTE", "aWQ6MTI-x", "%FF"])
def test_a_malformed_cursor_is_400(alice: Tenant, cursor: str) -> None:
    response = alice.client().get(f"/api/v1/products?cursor={cursor}")
    assert response.status_code == 400
    assert response.json() == {"cursor": ["Malformed cursor; pass back next_cursor as it was given."]}


def test_a_cursor_from_another_projects_listing_shows_only_your_products(alice: Tenant, bob: Tenant) -> None:
    bobs = product_of(bob, "theirs")
    mine = product_of(alice, "mine")
    results = (
        alice.client()
        .get(f"/api/v1/products?cursor={ListCursorPagination.cursor_after(str(bobs.pk - 1))}")
        .json()["results"]
    )
    assert [p["id"] for p in results] == ([mine.pk] if mine.pk > bobs.pk else [])


def test_listed_products_carry_prices_with_feature_codes_and_configuration(alice: Tenant) -> None:
    product = configured(alice)
    product.stripe_product_id = "prod_audit"
    product.save()
    stripe_product = StripeProductFactory.create(id="prod_audit", stripe_name="Audit")
    StripePriceFactory.create(
        id="price_audit",
        product=stripe_product,
        active=True,
        unit_amount=4900,
        recurring={"interval": "month", "interval_count": 1},
    )
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_audit", feature_code="audit")
    listed = alice.client().get("/api/v1/products").json()["results"][0]
    assert listed["prices"] == [
        {
            "price_id": "price_audit",
            "product_id": "prod_audit",
            "unit_amount": 4900,
            "currency": "usd",
            "recurring": {"interval": "month", "interval_count": 1},
            "active": True,
            "feature_code": "audit",
            "purchase_duration_days": None,
        }
    ]
    assert [g["name"] for g in listed["configuration"]["option_groups"]] == ["Size", "Extras"]


# --- read -----------------------------------------------------------------------------------------


def test_a_product_is_read_by_slug_with_its_configuration(alice: Tenant) -> None:
    product = configured(alice)
    body = alice.client().get("/api/v1/products/audit").json()
    assert body["id"] == product.pk and body["prices"] == []
    assert set(body["configuration"]) == {"option_groups", "add_ons", "custom_fields", "subscription_plans"}
    assert body["configuration"]["custom_fields"][2]["max_value"] == 10


def test_bobs_key_never_sees_or_changes_alices_products(alice: Tenant, bob: Tenant) -> None:
    product = configured(alice)
    before = snapshot(product)
    client = bob.client()
    assert client.get("/api/v1/products").json() == {"results": [], "next_cursor": None}
    assert client.get("/api/v1/products/audit").status_code == 404
    assert client.patch(f"/api/v1/products/{product.pk}", {"name": "Mine"}, format="json").status_code == 404
    assert client.put(f"/api/v1/products/{product.pk}/options", {}, format="json").status_code == 404
    assert snapshot(product) == before


# --- create ---------------------------------------------------------------------------------------


def test_a_product_is_created_with_its_configuration(alice: Tenant) -> None:
    response = alice.client().post(
        "/api/v1/products", create_body(configuration=full_configuration(), project_id=alice.project.pk), format="json"
    )
    assert response.status_code == 201, response.json()
    product = CatalogProduct.objects.get(project=alice.project, slug="audit")
    assert response.json()["id"] == product.pk
    assert (product.unit_amount, product.currency, product.active, product.description) == (4900, "usd", True, "")
    assert OptionGroup.objects.filter(product=product).count() == 2


def test_a_duplicate_slug_in_the_project_is_400_naming_slug(alice: Tenant, bob: Tenant) -> None:
    product_of(alice)
    response = alice.client().post("/api/v1/products", create_body(), format="json")
    assert response.status_code == 400
    assert response.json() == {"slug": ["A product with this slug already exists in this project."]}
    assert bob.client().post("/api/v1/products", create_body(), format="json").status_code == 201


def test_another_projects_id_in_the_body_is_403(alice: Tenant, bob: Tenant) -> None:
    response = alice.client().post("/api/v1/products", create_body(project_id=bob.project.pk), format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Project ID does not match"}
    assert not CatalogProduct.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": "123"}, "slug"),
        ({"unit_amount": -1}, "unit_amount"),
        ({"unit_amount": 12.5}, "unit_amount"),
        ({"currency": "USD"}, "currency"),
        ({"currency": ""}, "currency"),
        ({"unit_amount": None}, "unit_amount"),
    ],
)
def test_invalid_base_fields_are_400_naming_them(alice: Tenant, changes: dict[str, Any], field: str) -> None:
    response = alice.client().post("/api/v1/products", create_body(**changes), format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_create_with_one_bad_configuration_item_creates_nothing(alice: Tenant) -> None:
    configuration = full_configuration()
    configuration["custom_fields"][2]["min_value"] = 11
    response = alice.client().post("/api/v1/products", create_body(configuration=configuration), format="json")
    assert response.status_code == 400
    assert response.json() == {
        "configuration": {"custom_fields": {"2": {"min_value": ["min_value must not exceed max_value."]}}}
    }
    assert not CatalogProduct.objects.exists() and not OptionGroup.objects.exists()


def test_a_create_naming_existing_ids_is_400_and_creates_nothing(alice: Tenant) -> None:
    existing = configured(alice)
    configuration = full_configuration()
    configuration["add_ons"][0]["id"] = AddOn.objects.get(product=existing).pk
    response = alice.client().post(
        "/api/v1/products", create_body(slug="copy", configuration=configuration), format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["configuration"]["add_ons"]["0"]) == ["id"]
    assert list(CatalogProduct.objects.all()) == [existing]


# --- PATCH ----------------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_and_collections_it_names(alice: Tenant) -> None:
    product = configured(alice)
    before = snapshot(product)
    response = alice.client().patch(
        f"/api/v1/products/{product.pk}",
        {
            "name": "Renamed",
            "configuration": {
                "add_ons": [],
                "subscription_plans": [{"name": "Once", "billing_cycle": "one_time", "price_delta": 0}],
            },
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    after = snapshot(product)
    assert after["product"]["name"] == "Renamed" and after["product"]["slug"] == "audit"
    assert after["add_ons"] == [] and [p["name"] for p in after["plans"]] == ["Once"]
    for untouched in ("groups", "options", "fields"):
        assert after[untouched] == before[untouched]


def test_patch_without_configuration_keeps_it(alice: Tenant) -> None:
    product = configured(alice)
    before = snapshot(product)
    response = alice.client().patch(f"/api/v1/products/{product.pk}", {"active": False}, format="json")
    assert response.status_code == 200
    after = snapshot(product)
    assert after["product"]["active"] is False
    assert {k: v for k, v in after.items() if k != "product"} == {k: v for k, v in before.items() if k != "product"}


def test_patch_checks_amount_and_currency_together_and_changes_nothing_on_error(alice: Tenant) -> None:
    product = configured(alice)
    before = snapshot(product)
    response = alice.client().patch(
        f"/api/v1/products/{product.pk}", {"unit_amount": 100, "configuration": {"add_ons": []}}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"currency": ["A currency is required with a unit_amount."]}
    assert snapshot(product) == before


def test_patch_to_a_taken_slug_is_400(alice: Tenant) -> None:
    product_of(alice, "taken")
    product = product_of(alice)
    response = alice.client().patch(f"/api/v1/products/{product.pk}", {"slug": "taken"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["slug"]
    assert alice.client().patch(f"/api/v1/products/{product.pk}", {"slug": "audit"}, format="json").status_code == 200


def test_a_bad_item_in_a_patch_changes_nothing(alice: Tenant) -> None:
    product = configured(alice)
    before = snapshot(product)
    body = {
        "name": "Renamed",
        "configuration": {
            "add_ons": [],
            "option_groups": [{"name": "X", "selection": "single", "options": [{"name": "Y", "price_delta": 100_001}]}],
        },
    }
    response = alice.client().patch(f"/api/v1/products/{product.pk}", body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "configuration": {
            "option_groups": {
                "0": {"options": {"0": {"price_delta": ["Ensure this value is less than or equal to 100000."]}}}
            }
        }
    }
    assert snapshot(product) == before


# --- scopes ---------------------------------------------------------------------------------------


def test_a_key_without_catalog_write_can_read_but_not_write(alice: Tenant) -> None:
    product = configured(alice)
    app, key = app_create(project=alice.project, name="reader", scopes=["entitlements:read"])
    client = Tenant(project=alice.project, app=app, key=key).client()
    assert client.get("/api/v1/products").status_code == 200
    assert client.get("/api/v1/products/audit").status_code == 200
    before = snapshot(product)
    denied = [
        client.post("/api/v1/products", create_body(slug="new"), format="json"),
        client.patch(f"/api/v1/products/{product.pk}", {"name": "x"}, format="json"),
        client.put(f"/api/v1/products/{product.pk}/options", {}, format="json"),
    ]
    for response in denied:
        assert response.status_code == 403
        assert response.json() == {"detail": "This API key lacks the scope(s): catalog:write."}
    assert snapshot(product) == before and CatalogProduct.objects.filter(slug="new").count() == 0


def test_a_create_with_an_idempotency_key_replays_and_rejects_another_body(alice: Tenant) -> None:
    client = alice.client()
    first = client.post("/api/v1/products", create_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post("/api/v1/products", create_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/api/v1/products", create_body(slug="other"), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 409
    assert list(CatalogProduct.objects.values_list("slug", flat=True)) == ["audit"]


def test_a_product_is_read_by_its_id_as_by_its_slug(alice: Tenant) -> None:
    product = product_of(alice)
    client = alice.client()
    by_id = client.get(f"/api/v1/products/{product.pk}")
    assert by_id.status_code == 200
    assert by_id.json() == client.get(f"/api/v1/products/{product.slug}").json()
    assert by_id.json()["id"] == product.pk


def test_a_product_is_patched_by_its_slug_as_by_its_id(alice: Tenant) -> None:
    product = product_of(alice)
    client = alice.client()
    response = client.patch(f"/api/v1/products/{product.slug}", {"name": "By slug"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "By slug"
    response = client.patch(f"/api/v1/products/{product.pk}", {"name": "By id"}, format="json")
    assert response.status_code == 200 and response.json()["name"] == "By id"


def test_an_unknown_id_or_slug_is_404_and_another_projects_too(alice: Tenant, bob: Tenant) -> None:
    theirs = product_of(bob, "theirs")
    client = alice.client()
    for name in ("999999", "99999999999999999999999", "no-such-product", str(theirs.pk), "theirs"):
        assert client.get(f"/api/v1/products/{name}").status_code == 404, name
        assert client.patch(f"/api/v1/products/{name}", {"name": "x"}, format="json").status_code == 404, name
    assert CatalogProduct.objects.get(pk=theirs.pk).name != "x"


def test_a_patch_by_slug_needs_catalog_write_and_a_read_does_not(alice: Tenant) -> None:
    product = product_of(alice)
    _, key = app_create(project=alice.project, name="reader", scopes=["entitlements:read"])
    client = alice.client()
    client.credentials(HTTP_X_API_KEY=key)
    assert client.get(f"/api/v1/products/{product.slug}").status_code == 200
    assert client.patch(f"/api/v1/products/{product.slug}", {"name": "x"}, format="json").status_code == 403


def test_an_empty_cursor_is_400_like_any_malformed_cursor(alice: Tenant) -> None:
    response = alice.client().get("/api/v1/products?cursor=")
    assert response.status_code == 400
    assert list(response.json()) == ["cursor"]
