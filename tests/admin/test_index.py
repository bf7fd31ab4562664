"""The admin index: no empty dj-stripe list posing as the record of subscriptions or invoices; the
two mirrors the service keeps (Stripe products and prices) under the catalog, read-only; every model
name reads as English."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import NoReverseMatch, reverse

from apps.catalog.admin_mirror import tidy_stripe_admin
from apps.catalog.models import StripePrice, StripeProduct
from tests.factories import StripePriceFactory

pytestmark = pytest.mark.django_db


def test_no_dj_stripe_model_is_registered_and_the_mirrors_are() -> None:
    labels = {model._meta.label_lower for model in admin.site._registry}
    assert not [label for label in labels if label.startswith("djstripe.")]
    assert {"catalog.stripeproduct", "catalog.stripeprice"} <= labels
    with pytest.raises(NoReverseMatch):
        reverse("admin:djstripe_subscription_changelist")


def test_the_index_lists_stripe_products_and_prices_under_the_catalog(staff: Client) -> None:
    apps = {app["app_label"]: app for app in staff.get(reverse("admin:index")).context["app_list"]}
    assert "djstripe" not in apps
    names = {model["name"] for model in apps["catalog"]["models"]}
    assert {"Stripe products", "Stripe prices"} <= names


def test_the_mirrors_are_read_only_even_for_a_superuser(staff: Client) -> None:
    price = StripePriceFactory.create()
    for model, pk in ((StripeProduct, price.product.pk), (StripePrice, price.pk)):
        info = f"admin:catalog_{model._meta.model_name}"
        page = staff.get(reverse(f"{info}_changelist"))
        assert page.status_code == 200 and page.context["cl"].result_count == 1
        assert staff.get(reverse(f"{info}_add")).status_code == 403
        change = staff.get(reverse(f"{info}_change", args=[pk]))
        assert change.status_code == 200 and change.context["has_change_permission"] is False
        assert staff.post(reverse(f"{info}_delete", args=[pk])).status_code == 403
    assert b"1500 USD" in staff.get(reverse("admin:catalog_stripeprice_changelist")).content


def test_tidying_twice_changes_nothing() -> None:
    assert tidy_stripe_admin() == []


def test_every_model_name_reads_well() -> None:
    # A plural Django made by adding "s" to a word that does not take one ("entrys", "policys").
    for model in admin.site._registry:
        plural = str(model._meta.verbose_name_plural)
        label = model._meta.label
        assert not plural.endswith(("ys", "ss", "xs", "chs", "shs")) or plural.endswith(("ays", "eys", "oys")), label
        assert plural == plural.strip() and plural, label
        # Written as the rest of the index: sentence case, an acronym allowed ("API keys").
        first_word = plural.split()[0]
        assert first_word.islower() or first_word.isupper() or (plural[0].isupper() and plural[1:].islower()), label
