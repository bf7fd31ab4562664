"""Products of a project: reads (the queryset, one) and writes (create, update), each write one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apps.catalog.configuration import COLLECTIONS, CONFIGURATION_PREFETCH, configuration_replace
from apps.catalog.models import CatalogProduct
from apps.catalog.selectors import PriceView, prices_by_product
from apps.common.exceptions import NestedValidationError, validation_detail

BASE_FIELDS: tuple[str, ...] = (
    "slug",
    "name",
    "description",
    "active",
    "unit_amount",
    "currency",
    "feature_code",
    "purchase_duration_days",
)
DUPLICATE_SLUG = "A product with this slug already exists in this project."


def product_queryset(*, project_id: int) -> QuerySet[CatalogProduct]:
    return CatalogProduct.objects.filter(project_id=project_id).prefetch_related(*CONFIGURATION_PREFETCH)


def product_get(*, project_id: int, product_id: int) -> CatalogProduct | None:
    return product_queryset(project_id=project_id).filter(pk=product_id).first()


def product_get_by_slug(*, project_id: int, slug: str) -> CatalogProduct | None:
    return product_queryset(project_id=project_id).filter(slug=slug).first()


def product_prices(*, project_id: int, products: list[CatalogProduct]) -> dict[str, list[PriceView]]:
    stripe_ids = [product.stripe_product_id for product in products if product.stripe_product_id]
    return prices_by_product(project_id=project_id, stripe_product_ids=stripe_ids) if stripe_ids else {}


def product_create(*, project_id: int, data: Mapping[str, Any]) -> CatalogProduct:
    """Creates a product from validated base fields and an optional configuration."""
    _check_slug_free(project_id=project_id, slug=data["slug"], exclude_id=None)
    product = CatalogProduct(project_id=project_id, **{field: data[field] for field in BASE_FIELDS if field in data})
    try:
        with transaction.atomic():
            product.save()
            if "configuration" in data:
                _with_configuration_errors(product, data["configuration"], COLLECTIONS)
    except IntegrityError:
        # A concurrent create took the slug between our check and our insert.
        _check_slug_free(project_id=project_id, slug=data["slug"], exclude_id=None)
        raise
    return product


def product_update(*, product: CatalogProduct, data: Mapping[str, Any]) -> CatalogProduct:
    """Updates the given base fields; of a given configuration, replaces the collections it names
    and leaves the others alone."""
    if "slug" in data:
        _check_slug_free(project_id=product.project_id, slug=data["slug"], exclude_id=product.pk)
    for field in BASE_FIELDS:
        if field in data:
            setattr(product, field, data[field])
    amount_errors = product_amount_errors(unit_amount=product.unit_amount, currency=product.currency)
    if amount_errors:
        raise ValidationError(amount_errors)
    try:
        with transaction.atomic():
            product.save()
            if "configuration" in data:
                configuration = data["configuration"]
                _with_configuration_errors(
                    product, configuration, [name for name in COLLECTIONS if name in configuration]
                )
    except IntegrityError:
        _check_slug_free(project_id=product.project_id, slug=product.slug, exclude_id=product.pk)
        raise
    return product


def product_amount_errors(*, unit_amount: int | None, currency: str) -> dict[str, list[str]]:
    """A price needs its currency and a currency needs a price (the model's check constraint)."""
    if unit_amount is not None and not currency:
        return {"currency": ["A currency is required with a unit_amount."]}
    if unit_amount is None and currency:
        return {"unit_amount": ["A unit_amount is required with a currency."]}
    return {}


def _with_configuration_errors(product: CatalogProduct, configuration: Mapping[str, Any], names: Iterable[str]) -> None:
    # Errors of the configuration are reported where the caller sent it: under "configuration".
    try:
        configuration_replace(product=product, configuration=configuration, collections=names)
    except ValidationError as exc:
        raise NestedValidationError({"configuration": validation_detail(exc)}) from None


def _check_slug_free(*, project_id: int, slug: str, exclude_id: int | None) -> None:
    taken = CatalogProduct.objects.filter(project_id=project_id, slug=slug)
    if exclude_id is not None:
        taken = taken.exclude(pk=exclude_id)
    if taken.exists():
        raise ValidationError({"slug": [DUPLICATE_SLUG]})
