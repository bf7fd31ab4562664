"""Reads of the catalog: a project's prices as the API shows them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from django.db.models import QuerySet
from djstripe.models import Price

from apps.catalog.models import CatalogProduct, CatalogSyncRun, PriceFeature
from apps.projects.models import Project


class PriceView(TypedDict):
    price_id: str
    product_id: str
    unit_amount: int | None
    currency: str
    recurring: dict[str, Any] | None
    active: bool
    feature_code: str | None
    purchase_duration_days: int | None


def _price_view(price: Price, feature: PriceFeature | None) -> PriceView:
    data: dict[str, Any] = price.stripe_data
    recurring = data.get("recurring")
    return {
        "price_id": price.id,
        "product_id": str(data.get("product") or ""),
        "unit_amount": data.get("unit_amount"),
        "currency": str(data.get("currency") or ""),
        "recurring": {"interval": recurring.get("interval"), "interval_count": recurring.get("interval_count")}
        if recurring
        else None,
        "active": bool(data.get("active")),
        "feature_code": feature.feature_code if feature else None,
        "purchase_duration_days": feature.purchase_duration_days if feature else None,
    }


def project_stripe_product_ids(*, project_id: int) -> list[str]:
    linked = CatalogProduct.objects.filter(project_id=project_id, stripe_product_id__isnull=False)
    return [product_id for product_id in linked.values_list("stripe_product_id", flat=True) if product_id]


def project_price_queryset(*, project_id: int, stripe_product_ids: list[str] | None = None) -> QuerySet[Price]:
    """The mirrored Stripe prices of the project's products (or of these of its products), by id."""
    product_ids = (
        stripe_product_ids if stripe_product_ids is not None else project_stripe_product_ids(project_id=project_id)
    )
    prices: QuerySet[Price] = Price.objects.all()
    if not product_ids:
        return prices.none()
    return prices.filter(product__id__in=product_ids).order_by("id")


def price_views(*, project_id: int, prices: Iterable[Price]) -> list[PriceView]:
    """The prices as the API shows them, with the project's feature mapping."""
    prices = list(prices)
    mapped = PriceFeature.objects.filter(project_id=project_id, stripe_price_id__in=[price.id for price in prices])
    features = {f.stripe_price_id: f for f in mapped}
    return [_price_view(price, features.get(price.id)) for price in prices]


def project_prices(*, project_id: int, stripe_product_ids: list[str] | None = None) -> list[PriceView]:
    """The mirrored Stripe prices of the project's products, with their feature mapping."""
    prices = project_price_queryset(project_id=project_id, stripe_product_ids=stripe_product_ids)
    return price_views(project_id=project_id, prices=prices)


def prices_by_product(*, project_id: int, stripe_product_ids: list[str]) -> dict[str, list[PriceView]]:
    grouped: dict[str, list[PriceView]] = {product_id: [] for product_id in stripe_product_ids}
    for view in project_prices(project_id=project_id, stripe_product_ids=stripe_product_ids):
        grouped.setdefault(view["product_id"], []).append(view)
    return grouped


def project_price(*, project_id: int, price_id: str) -> PriceView | None:
    """One of the project's mirrored prices, or None when the price is not in its catalog."""
    price = Price.objects.filter(id=price_id).first()
    if price is None:
        return None
    product_id = str(price.stripe_data.get("product") or "")
    if not CatalogProduct.objects.filter(project_id=project_id, stripe_product_id=product_id).exists():
        return None
    return _price_view(price, PriceFeature.objects.filter(project_id=project_id, stripe_price_id=price_id).first())


def catalog_sync_run_get(*, project_id: int, run_id: int) -> CatalogSyncRun | None:
    """A catalog sync run of this project; None for an unknown id or another project's run."""
    return CatalogSyncRun.objects.filter(pk=run_id, project_id=project_id).first()


def catalog_product_owner(*, stripe_product_id: str) -> Project | None:
    """The project a Stripe product is linked to (a CatalogProduct with that id), or None."""
    linked = CatalogProduct.objects.select_related("project").filter(stripe_product_id=stripe_product_id).first()
    return linked.project if linked is not None else None


def stripe_price_data(*, price_id: str) -> dict[str, Any] | None:
    """The mirrored Stripe price as dj-stripe holds it (its `stripe_data`), or None."""
    data: dict[str, Any] | None = Price.objects.filter(id=price_id).values_list("stripe_data", flat=True).first()
    return data
