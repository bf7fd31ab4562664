"""Reads of the catalog: a project's prices as the API shows them."""

from __future__ import annotations

from typing import Any, TypedDict

from djstripe.models import Price

from apps.catalog.models import CatalogProduct, PriceFeature


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


def project_prices(*, project_id: int, stripe_product_ids: list[str] | None = None) -> list[PriceView]:
    """The mirrored Stripe prices of the project's products, with their feature mapping."""
    product_ids = (
        stripe_product_ids if stripe_product_ids is not None else project_stripe_product_ids(project_id=project_id)
    )
    if not product_ids:
        return []
    prices = Price.objects.filter(product__id__in=product_ids).order_by("id")
    features = {f.stripe_price_id: f for f in PriceFeature.objects.filter(project_id=project_id)}
    return [_price_view(price, features.get(price.id)) for price in prices]


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
