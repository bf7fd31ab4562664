"""Writes to the catalog that are not product configuration: feature mappings, and Stripe products and
prices mirrored into the catalog."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify
from djstripe.models import Price, Product

from apps.catalog.models import CatalogProduct, PriceFeature
from apps.catalog.selectors import PriceView, project_price
from apps.common import stripe_gateway
from apps.common.exceptions import NotFound
from apps.projects.models import Project


@transaction.atomic
def price_feature_set(
    *, project: Project, price_id: str, feature_code: str, purchase_duration_days: int | None
) -> PriceView:
    price = project_price(project_id=project.pk, price_id=price_id)
    if price is None:
        raise NotFound(f"Price {price_id} is not in this project's catalog.")
    if purchase_duration_days is not None and price["recurring"] is not None:
        raise ValidationError(
            {
                "purchase_duration_days": [
                    "Only one-time prices have a purchase duration; a subscription lasts its period."
                ]
            }
        )
    feature, _ = PriceFeature.objects.select_for_update().get_or_create(
        project=project, stripe_price_id=price_id, defaults={"feature_code": feature_code}
    )
    feature.feature_code = feature_code
    feature.purchase_duration_days = purchase_duration_days
    feature.full_clean()
    feature.save()
    updated = project_price(project_id=project.pk, price_id=price_id)
    assert updated is not None
    return updated


# --- Stripe products and prices into the catalog (catalog sync, the demo catalog, webhooks) -------
# dj-stripe's mirror may fetch related objects from Stripe itself (the owner account, a missing
# product), so it runs outside any transaction of ours; our own rows are written afterwards, in a
# short transaction that makes no Stripe call. The mirror holds Stripe's current state, so it is
# safe to leave it written if what follows fails: a retry mirrors the same object again.


def stripe_product_mirror(*, project: Project, data: dict[str, Any]) -> None:
    """Mirrors a Stripe product we hold (a list page, a fetched object) into dj-stripe's tables."""
    stripe_gateway.djstripe_mirror(Product, data, project_slug=project.slug)


def stripe_price_mirror(*, project: Project, data: dict[str, Any]) -> None:
    """Mirrors a Stripe price we hold into dj-stripe's tables (dj-stripe fetches its product if missing)."""
    stripe_gateway.djstripe_mirror(Price, data, project_slug=project.slug)


def _unique_slug(project: Project, wanted: str, stripe_product_id: str) -> str:
    base = slugify(wanted)[:56] or "product"
    if base.isdigit():
        base = f"product-{base}"  # /products/<digits> is the by-id route, so a slug is never all digits
    slug = base
    taken = CatalogProduct.objects.filter(project=project).exclude(stripe_product_id=stripe_product_id)
    counter = 2
    while taken.filter(slug=slug).exists():
        slug = f"{base}-{counter}"
        counter += 1
    return slug


_PRODUCT_FIELDS = ("name", "description", "active")


# No savepoint when nested (inside event processing, like the other services apply calls); from the
# catalog sync, outside any transaction, it is a short transaction of its own.
@transaction.atomic(savepoint=False)
def catalog_product_link_from_stripe(*, project: Project, data: dict[str, Any]) -> tuple[CatalogProduct, list[str]]:
    """Creates or updates the CatalogProduct of a Stripe product; (the product, changes). No Stripe call."""
    product = CatalogProduct.objects.select_for_update().filter(stripe_product_id=data["id"]).first()
    if product is None:
        wanted = (data.get("metadata") or {}).get("slug") or data.get("name") or data["id"]
        product = CatalogProduct(
            project=project, stripe_product_id=data["id"], slug=_unique_slug(project, wanted, data["id"])
        )
        before = None
    else:
        before = {name: getattr(product, name) for name in _PRODUCT_FIELDS}
    product.name = str(data.get("name") or product.slug)[:200]
    product.description = str(data.get("description") or "")
    product.active = bool(data.get("active", True))
    product.save()
    after = {name: getattr(product, name) for name in _PRODUCT_FIELDS}
    return product, [f"product {data['id']}: {before} -> {after}"] if before != after else []


def catalog_product_upsert_from_stripe(*, project: Project, data: dict[str, Any]) -> CatalogProduct:
    """Mirrors one Stripe product (from a list page or a fetched object) and links it to `project`.

    Two steps, not one transaction: dj-stripe's mirror (which may call Stripe) first, outside any
    transaction of ours, then our row in its own short transaction.
    """
    stripe_product_mirror(project=project, data=data)
    product, _ = catalog_product_link_from_stripe(project=project, data=data)
    return product


def catalog_product_deactivate(*, stripe_product_id: str) -> list[str]:
    """A Stripe product was deleted: its CatalogProduct (kept for history) becomes inactive."""
    count = CatalogProduct.objects.filter(stripe_product_id=stripe_product_id).update(active=False)
    return [f"product {stripe_product_id} inactive"] if count else []
