"""Mirrors Stripe products and prices into dj-stripe and assigns products to projects.

A Stripe product belongs to the project named by its `project` metadata (the project's slug), or
to the project an admin assigned it to. Products of no known project are another app's on a shared
Stripe account: they are counted and left alone.

No transaction spans the sync, and none of ours is open while Stripe is called: the pages are read
outside any, dj-stripe's mirror of each object (which may fetch related objects) runs outside any of
ours, and each CatalogProduct is written in a short transaction of its own after it
(apps/catalog/services.py). A long sync therefore holds no locks while it waits on Stripe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.catalog.models import CatalogProduct
from apps.catalog.services import catalog_product_upsert_from_stripe, stripe_price_mirror
from apps.common import stripe_gateway
from apps.projects.models import Project

# Re-exported: the demo catalog mirrors through the same two steps.

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
        stripe_price_mirror(project=owner, data=data)
        report.prices += 1
        if report.prices % 25 == 0:
            say(f"{report.prices} prices synced")
    return report
