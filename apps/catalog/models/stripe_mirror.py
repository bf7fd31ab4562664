"""The two dj-stripe mirrors the service really keeps, as proxies in the catalog.

The catalog sync (apps/catalog/sync.py) writes dj-stripe's Product and Price rows; nothing else of
dj-stripe's forty models is synced (subscriptions, invoices and customers are the service's own
tables). The proxies let the admin show these two under "Catalog", where finance looks for prices,
while dj-stripe's own admin entries are taken off the index (apps/catalog/admin_mirror.py).
No table of their own: a proxy reads dj-stripe's.
"""

from __future__ import annotations

from djstripe.models import Price, Product


class StripeProduct(Product):  # type: ignore[misc]  # dj-stripe ships no type hints
    class Meta:
        proxy = True
        app_label = "catalog"
        verbose_name = "Stripe product"
        verbose_name_plural = "Stripe products"


class StripePrice(Price):  # type: ignore[misc]  # dj-stripe ships no type hints
    class Meta:
        proxy = True
        app_label = "catalog"
        verbose_name = "Stripe price"
        verbose_name_plural = "Stripe prices"
