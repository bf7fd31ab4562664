"""The admin index shows only the dj-stripe mirrors the service keeps: products and prices.

dj-stripe registers an admin for each of its forty-odd models. This service syncs only the catalog
(Stripe products and prices, apps/catalog/sync.py) and keeps its own subscription, invoice and
customer tables, so dj-stripe's other lists are always empty and look authoritative while showing
0 subscriptions. `tidy_stripe_admin` takes every dj-stripe model off the admin and shows the two
mirrored ones, read-only, under "Catalog" (proxies, apps/catalog/models/stripe_mirror.py).

Called from CatalogConfig.ready: django.contrib.admin comes first in INSTALLED_APPS, so its ready
(autodiscovery, which imports dj-stripe's admin module) has run by then.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.sites import AdminSite

from apps.catalog.models import StripePrice, StripeProduct
from apps.common.admin_evidence import ReadOnlyAdmin


def _data(obj: Any, key: str) -> Any:
    data = obj.stripe_data or {}
    value = data.get(key)
    return "-" if value is None else value


class StripeProductAdmin(ReadOnlyAdmin[StripeProduct]):
    # Written by the catalog sync and product webhooks; changed at Stripe, never here.
    # dj-stripe 2.11 keeps the Stripe fields in stripe_data: read there, not its legacy columns.
    list_display = ("id", "stripe_name", "stripe_active", "livemode", "created")
    search_fields = ("id", "stripe_data__name")
    fields = ("id", "stripe_name", "stripe_active", "livemode", "created", "stripe_data")
    readonly_fields = fields

    @admin.display(description="name")
    def stripe_name(self, obj: StripeProduct) -> Any:
        return _data(obj, "name")

    @admin.display(description="active")
    def stripe_active(self, obj: StripeProduct) -> Any:
        return _data(obj, "active")


class StripePriceAdmin(ReadOnlyAdmin[StripePrice]):
    list_display = ("id", "product", "amount", "interval", "stripe_active", "livemode")
    search_fields = ("id", "product__id")
    list_select_related = ("product",)
    fields = ("id", "product", "amount", "interval", "stripe_active", "livemode", "created", "stripe_data")
    readonly_fields = fields

    @admin.display(description="active")
    def stripe_active(self, obj: StripePrice) -> Any:
        return _data(obj, "active")

    @admin.display(description="amount")
    def amount(self, obj: StripePrice) -> str:
        # Minor units as Stripe stores them, with the currency.
        return f"{_data(obj, 'unit_amount')} {str(_data(obj, 'currency')).upper()}"

    @admin.display(description="interval")
    def interval(self, obj: StripePrice) -> str:
        recurring = (obj.stripe_data or {}).get("recurring")
        if not recurring:
            return "one time"
        count = recurring.get("interval_count") or 1
        return f"every {count} {recurring.get('interval', '?')}"


def tidy_stripe_admin(site: AdminSite = admin.site) -> list[str]:
    """Unregisters every dj-stripe model and registers the two mirrors; returns what it unregistered."""
    removed = sorted(model._meta.label_lower for model in site._registry if model._meta.app_label == "djstripe")
    for model in [m for m in site._registry if m._meta.app_label == "djstripe"]:
        site.unregister(model)
    if not site.is_registered(StripeProduct):
        site.register(StripeProduct, StripeProductAdmin)
    if not site.is_registered(StripePrice):
        site.register(StripePrice, StripePriceAdmin)
    return removed
