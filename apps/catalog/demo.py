"""The demo catalog `seed_demo` creates at Stripe (the sandbox in `make run`) and maps to features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.catalog.models import CatalogProduct, PriceFeature
from apps.catalog.services import catalog_product_upsert_from_stripe, stripe_price_mirror
from apps.common import stripe_gateway
from apps.projects.models import Project


@dataclass(frozen=True)
class DemoPrice:
    key: str  # the Stripe lookup_key is "<project slug>-<key>": lookup keys are unique per Stripe account
    unit_amount: int
    interval: str | None  # None for a one-time price
    feature_code: str
    purchase_duration_days: int | None = None


@dataclass(frozen=True)
class DemoProduct:
    slug: str
    name: str
    prices: tuple[DemoPrice, ...]


DEMO_CATALOG = (
    DemoProduct(
        "pro",
        "Pro",
        (
            DemoPrice("pro-monthly", 1500, "month", "pro"),
            DemoPrice("pro-annual", 15000, "year", "pro"),
        ),
    ),
    DemoProduct("lifetime-export", "Lifetime export", (DemoPrice("lifetime-export", 4900, None, "export"),)),
)


def _ensure_stripe_product(project: Project, spec: DemoProduct) -> CatalogProduct:
    product, _ = CatalogProduct.objects.get_or_create(project=project, slug=spec.slug, defaults={"name": spec.name})
    if not product.stripe_product_id:
        data = stripe_gateway.product_create(
            project_slug=project.slug,
            idempotency_key=f"catalog-product-{product.pk}",
            params={"name": spec.name, "metadata": {"project": project.slug, "slug": spec.slug}},
        )
        CatalogProduct.objects.filter(pk=product.pk).update(stripe_product_id=data["id"])
    else:
        data = stripe_gateway.object_retrieve(
            project_slug=project.slug, object_type="product", object_id=product.stripe_product_id
        )
    return catalog_product_upsert_from_stripe(project=project, data=data)


def _ensure_stripe_price(project: Project, product: CatalogProduct, spec: DemoPrice) -> dict[str, Any]:
    assert product.stripe_product_id is not None
    existing = {
        price.get("lookup_key"): price
        for price in stripe_gateway.prices_iter(project_slug=project.slug, product_id=product.stripe_product_id)
    }
    lookup_key = f"{project.slug}-{spec.key}"
    if lookup_key in existing:
        return existing[lookup_key]
    params: dict[str, Any] = {
        "product": product.stripe_product_id,
        "unit_amount": spec.unit_amount,
        "currency": "usd",
        "lookup_key": lookup_key,
        "metadata": {"project": project.slug},
    }
    if spec.interval:
        params["recurring"] = {"interval": spec.interval}
    return stripe_gateway.price_create(
        project_slug=project.slug, idempotency_key=f"catalog-product-{product.pk}-{spec.key}", params=params
    )


def demo_catalog_seed(*, project: Project) -> list[tuple[str, str, str]]:
    """Creates what is missing; returns (Stripe lookup_key, price_id, feature_code) for every demo price."""
    seeded: list[tuple[str, str, str]] = []
    for product_spec in DEMO_CATALOG:
        product = _ensure_stripe_product(project, product_spec)
        for price_spec in product_spec.prices:
            price = _ensure_stripe_price(project, product, price_spec)
            stripe_price_mirror(project=project, data=price)
            PriceFeature.objects.update_or_create(
                project=project,
                stripe_price_id=price["id"],
                defaults={
                    "feature_code": price_spec.feature_code,
                    "purchase_duration_days": price_spec.purchase_duration_days,
                },
            )
            seeded.append((str(price["lookup_key"]), price["id"], price_spec.feature_code))
    return seeded
