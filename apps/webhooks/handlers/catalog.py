"""product.*, price.*: Stripe's current object is fetched and mirrored (apps/catalog/services.py).

Catalog events are rare and carry no version: applying Stripe's current object means an old event
delivered late can never roll a newer name or state back. dj-stripe's mirror may fetch related
objects itself, so it runs in the mirror step, outside the event's transaction; the apply step
writes only our CatalogProduct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps.catalog import services
from apps.catalog.selectors import stripe_price_data
from apps.common import stripe_gateway
from apps.webhooks.handlers.common import unrouted
from apps.webhooks.registry import Outcome, StripeEvent, handles_in_steps
from apps.webhooks.routing import catalog_project

if TYPE_CHECKING:  # a type only
    from apps.projects.models import Project


@dataclass(frozen=True)
class CatalogFetched:
    project: Project | None
    current: dict[str, Any] | None  # Stripe's current object; None for a deleted product
    before: dict[str, Any] | None = None  # a price: what dj-stripe held before this event


def _fetch_product(event: StripeEvent) -> CatalogFetched:
    product = event.data_object
    project = catalog_project(event.type, product)
    if project is None or event.type == "product.deleted":
        return CatalogFetched(project, None)
    current = stripe_gateway.object_retrieve(project_slug=project.slug, object_type="product", object_id=product["id"])
    return CatalogFetched(project, current)


def _mirror_product(event: StripeEvent, fetched: CatalogFetched) -> None:
    if fetched.project is not None and fetched.current is not None:
        services.stripe_product_mirror(project=fetched.project, data=fetched.current)


@handles_in_steps("product.created", "product.updated", "product.deleted", fetch=_fetch_product, mirror=_mirror_product)
def product_changed(event: StripeEvent, fetched: CatalogFetched) -> Outcome:
    project = fetched.project
    if project is None:
        return unrouted(event)
    if fetched.current is None:  # product.deleted
        changes = services.catalog_product_deactivate(stripe_product_id=event.data_object["id"])
    else:
        _, changes = services.catalog_product_link_from_stripe(project=project, data=fetched.current)
    return Outcome("processed", project_id=project.pk, changes=changes)


def _fetch_price(event: StripeEvent) -> CatalogFetched:
    price = event.data_object
    project = catalog_project(event.type, price)
    if project is None:
        return CatalogFetched(None, None)
    current = stripe_gateway.object_retrieve(project_slug=project.slug, object_type="price", object_id=price["id"])
    return CatalogFetched(project, current, before=stripe_price_data(price_id=price["id"]))


def _mirror_price(event: StripeEvent, fetched: CatalogFetched) -> None:
    if fetched.project is not None and fetched.current is not None:
        services.stripe_price_mirror(project=fetched.project, data=fetched.current)


def _without_djstripe(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "djstripe"}


@handles_in_steps("price.created", "price.updated", "price.deleted", fetch=_fetch_price, mirror=_mirror_price)
def price_changed(event: StripeEvent, fetched: CatalogFetched) -> Outcome:
    # Nothing of ours to write: a price lives in dj-stripe's mirror (the mirror step) and our
    # PriceFeature mapping, which events do not touch.
    if fetched.project is None or fetched.current is None:
        return unrouted(event)
    before = fetched.before
    changed = before is None or _without_djstripe(before) != _without_djstripe(fetched.current)
    return Outcome(
        "processed",
        project_id=fetched.project.pk,
        changes=[f"price {event.data_object['id']} synced"] if changed else [],
    )
