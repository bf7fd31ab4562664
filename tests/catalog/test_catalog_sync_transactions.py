"""Issue 9, point 1: the catalog sync calls Stripe outside any transaction of ours.

dj-stripe's mirror may fetch related objects itself (the owner account, a missing product); it runs
outside our transactions, and our CatalogProduct rows are written in a short transaction after it.
"""

from __future__ import annotations

from typing import Any

import pytest
from djstripe.models import Price, Product

from apps.catalog.models import CatalogProduct
from apps.catalog.sync import catalog_sync
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant
from tests.transaction_guard import StripeRequests, stripe_requests

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]


def test_the_sync_calls_stripe_outside_any_transaction_of_ours(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: Any, stripe_requests: StripeRequests
) -> None:
    product = stripe_client.v1.products.create(params={"name": "Pro", "metadata": {"project": "alpha"}})
    price = stripe_client.v1.prices.create(params={"currency": "usd", "unit_amount": 100, "product": product.id})

    report = catalog_sync(project=alice.project)

    assert (report.products, report.prices) == (1, 1)
    assert CatalogProduct.objects.get(stripe_product_id=product.id).project == alice.project
    assert Product.objects.filter(id=product.id).exists() and Price.objects.filter(id=price.id).exists()
    stripe_requests.assert_none_inside_our_transactions()
    # dj-stripe fetched the account it files objects under: inside a transaction of its own only.
    assert any(request.by_djstripe for request in stripe_requests.seen)


def test_a_product_is_linked_in_a_short_transaction_after_the_mirror(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection

    from apps.catalog import services

    seen: list[tuple[str, bool]] = []
    real_mirror, real_link = services.stripe_product_mirror, services.catalog_product_link_from_stripe

    def mirror(**kwargs: Any) -> None:
        seen.append(("mirror", connection.in_atomic_block))
        real_mirror(**kwargs)

    def link(**kwargs: Any) -> Any:
        result = real_link(**kwargs)
        seen.append(("link", CatalogProduct.objects.filter(stripe_product_id=kwargs["data"]["id"]).exists()))
        return result

    monkeypatch.setattr(services, "stripe_product_mirror", mirror)
    monkeypatch.setattr(services, "catalog_product_link_from_stripe", link)
    stripe_client.v1.products.create(params={"name": "Pro", "metadata": {"project": "alpha"}})
    catalog_sync(project=alice.project)
    assert seen == [("mirror", False), ("link", True)]
