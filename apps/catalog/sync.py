"""Mirrors Stripe products and prices into dj-stripe and assigns products to projects.

A Stripe product belongs to the project named by its `project` metadata (the project's slug), or
to the project an admin assigned it to. Products of no known project are another app's on a shared
Stripe account: they are counted and left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils.text import slugify
from djstripe.models import Price, Product

from apps.catalog.models import CatalogProduct
from apps.common import stripe_gateway
from apps.projects.models import Project

Progress = Callable[[str], None]


@dataclass
class SyncReport:
    products: int = 0
    prices: int = 0
    skipped_products: list[str] = field(default_factory=list)


def _owner(data: dict[str, Any], projects: dict[str, Project], assigned: dict[str, int]) -> Project | None:
    if data["id"] in assigned:
        return next((p for p in projects.values() if p.pk == assigned[data["id"]]), None)
    slug = (data.get("metadata") or {}).get("project")
    return projects.get(slug) if slug else None


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


@transaction.atomic
def catalog_product_upsert_from_stripe(*, project: Project, data: dict[str, Any]) -> CatalogProduct:
    """Mirrors one Stripe product (from a list page or an event snapshot) and links it to `project`."""
    stripe_gateway.djstripe_mirror(Product, data, project_slug=project.slug)
    product = CatalogProduct.objects.select_for_update().filter(stripe_product_id=data["id"]).first()
    if product is None:
        wanted = (data.get("metadata") or {}).get("slug") or data.get("name") or data["id"]
        product = CatalogProduct(
            project=project, stripe_product_id=data["id"], slug=_unique_slug(project, wanted, data["id"])
        )
    product.name = str(data.get("name") or product.slug)[:200]
    product.description = str(data.get("description") or "")
    product.active = bool(data.get("active", True))
    product.save()
    return product


def price_upsert_from_stripe(*, project: Project, data: dict[str, Any]) -> None:
    stripe_gateway.djstripe_mirror(Price, data, project_slug=project.slug)


def catalog_sync(*, project: Project | None = None, progress: Progress | None = None) -> SyncReport:
    """Pulls every product and price from Stripe; with `project`, only that project's."""
    say = progress or (lambda message: None)
    report = SyncReport()
    projects = {p.slug: p for p in Project.objects.all()}
    assigned = {
        product_id: project_id
        for product_id, project_id in CatalogProduct.objects.filter(stripe_product_id__isnull=False).values_list(
            "stripe_product_id", "project_id"
        )
        if product_id
    }
    owners: dict[str, Project] = {}
    slug = project.slug if project else None
    for data in stripe_gateway.products_iter(project_slug=slug):
        owner = _owner(data, projects, assigned)
        if owner is None or (project is not None and owner.pk != project.pk):
            report.skipped_products.append(data["id"])
            continue
        catalog_product_upsert_from_stripe(project=owner, data=data)
        owners[data["id"]] = owner
        report.products += 1
        say(f"product {data['id']} -> {owner.slug} ({report.products} synced)")
    for data in stripe_gateway.prices_iter(project_slug=slug):
        owner = owners.get(str(data.get("product")))
        if owner is None:
            continue
        price_upsert_from_stripe(project=owner, data=data)
        report.prices += 1
        if report.prices % 25 == 0:
            say(f"{report.prices} prices synced")
    return report
