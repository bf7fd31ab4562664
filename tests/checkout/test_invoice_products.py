"""What a paid invoice line entitles to is the product's: its feature code and purchase duration, set
through the products API (validated like a price's feature) and the admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.catalog.models import CatalogProduct
from tests.conftest import Tenant
from tests.factories import CatalogProductFactory

pytestmark = pytest.mark.django_db


def test_a_product_shows_its_feature_code_and_purchase_duration(alice: Tenant) -> None:
    product = CatalogProductFactory.create(
        project=alice.project, slug="audit", feature_code="audit", purchase_duration_days=365
    )
    CatalogProductFactory.create(project=alice.project, slug="plain")
    body = alice.client().get(f"/api/v1/products/{product.pk}").json()
    assert (body["feature_code"], body["purchase_duration_days"]) == ("audit", 365)
    listed = {
        p["slug"]: (p["feature_code"], p["purchase_duration_days"])
        for p in alice.client().get("/api/v1/products").json()["results"]
    }
    assert listed == {"audit": ("audit", 365), "plain": ("", None)}


def test_a_create_sets_them_and_a_patch_changes_or_clears_them(alice: Tenant) -> None:
    api = alice.client()
    created = api.post(
        "/api/v1/products",
        {
            "slug": "audit",
            "name": "Audit",
            "unit_amount": 4900,
            "currency": "usd",
            "feature_code": "audit:v2",
            "purchase_duration_days": 30,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert (created.json()["feature_code"], created.json()["purchase_duration_days"]) == ("audit:v2", 30)

    changed = api.patch("/api/v1/products/audit", {"purchase_duration_days": 36_500}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["feature_code"], changed.json()["purchase_duration_days"]) == ("audit:v2", 36_500)

    cleared = api.patch("/api/v1/products/audit", {"feature_code": "", "purchase_duration_days": None}, format="json")
    assert (cleared.json()["feature_code"], cleared.json()["purchase_duration_days"]) == ("", None)
    assert CatalogProduct.objects.values_list("feature_code", "purchase_duration_days").get(slug="audit") == ("", None)


def test_without_them_a_product_grants_nothing(alice: Tenant) -> None:
    created = alice.client().post("/api/v1/products", {"slug": "audit", "name": "Audit"}, format="json").json()
    assert (created["feature_code"], created["purchase_duration_days"]) == ("", None)


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"feature_code": "Pro!"}, {"feature_code": ["This value does not match the required pattern."]}),
        (
            {"feature_code": "x" * 65},
            {
                "feature_code": [
                    "Ensure this field has no more than 64 characters.",
                    "This value does not match the required pattern.",
                ]
            },
        ),
        ({"feature_code": 7}, {"feature_code": ["Not a valid string."]}),
        (
            {"purchase_duration_days": 0},
            {"purchase_duration_days": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            {"purchase_duration_days": 36_501},
            {"purchase_duration_days": ["Ensure this value is less than or equal to 36500."]},
        ),
        ({"purchase_duration_days": "30"}, {"purchase_duration_days": ["A valid integer is required."]}),
    ],
)
def test_a_bad_feature_code_or_duration_is_a_400_and_changes_nothing(
    alice: Tenant, changes: dict[str, Any], errors: dict[str, Any]
) -> None:
    product = CatalogProductFactory.create(project=alice.project, slug="audit", feature_code="audit")
    patched = alice.client().patch(f"/api/v1/products/{product.pk}", changes, format="json")
    assert (patched.status_code, patched.json()) == (400, errors)
    created = alice.client().post("/api/v1/products", {"slug": "other", "name": "Other"} | changes, format="json")
    assert (created.status_code, created.json()) == (400, errors)
    assert CatalogProduct.objects.values_list("feature_code", "purchase_duration_days").get(pk=product.pk) == (
        "audit",
        None,
    )
    assert not CatalogProduct.objects.filter(slug="other").exists()


def _inline_management(prefixes: tuple[str, ...]) -> dict[str, str]:
    data: dict[str, str] = {}
    for prefix in prefixes:
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}
    return data


def test_the_admin_shows_and_edits_them(client: Client, alice: Tenant) -> None:
    client.force_login(get_user_model().objects.create_superuser("catalog", "c@example.invalid", "pw-for-tests"))
    product = CatalogProductFactory.create(project=alice.project, slug="audit", name="Audit", feature_code="audit")
    listing = client.get("/admin/catalog/catalogproduct/", {"q": "audit"}).content.decode()
    assert "audit" in listing and "Feature code" in listing

    url = f"/admin/catalog/catalogproduct/{product.pk}/change/"
    page = client.get(url).content.decode()
    assert 'name="feature_code"' in page and 'name="purchase_duration_days"' in page
    form = {
        "project": str(alice.project.pk),
        "slug": "audit",
        "name": "Audit",
        "description": "",
        "active": "on",
        "unit_amount": "1500",
        "currency": "usd",
        "stripe_product_id": "",
        **_inline_management(("option_groups", "add_ons", "custom_fields", "subscription_plans")),
    }
    refused = client.post(url, form | {"feature_code": "Not valid", "purchase_duration_days": "0"})
    assert refused.status_code == 200  # the form again, with its errors
    assert set(refused.context["adminform"].form.errors) == {"feature_code", "purchase_duration_days"}
    saved = client.post(url, form | {"feature_code": "audit.pro", "purchase_duration_days": "90"})
    assert saved.status_code == 302
    assert CatalogProduct.objects.values_list("feature_code", "purchase_duration_days").get(pk=product.pk) == (
        "audit.pro",
        90,
    )
