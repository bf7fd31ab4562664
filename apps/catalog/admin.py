"""Admin for products, their configuration, and the feature codes of Stripe prices.

Inline edits go through Django's ModelForms, which run the model validators and check constraints,
so the admin cannot store what the API would reject. Options are edited on their group's page (an
inline cannot nest another inline); the product page links there.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from apps.catalog.models import AddOn, CatalogProduct, CustomField, Option, OptionGroup, PriceFeature, SubscriptionPlan


class OptionGroupInline(admin.TabularInline):  # type: ignore[type-arg]
    model = OptionGroup
    extra = 0
    fields = ("position", "name", "selection", "required", "options_link")
    readonly_fields = ("options_link",)
    ordering = ("position", "id")

    @admin.display(description="Options")
    def options_link(self, group: OptionGroup) -> str:
        if group.pk is None:
            return "Save first, then edit its options."
        url = reverse("admin:catalog_optiongroup_change", args=[group.pk])
        return format_html('<a href="{}">{} option(s)</a>', url, group.options.count())


class AddOnInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AddOn
    extra = 0
    fields = ("position", "name", "description", "price_delta")
    ordering = ("position", "id")


class CustomFieldInline(admin.TabularInline):  # type: ignore[type-arg]
    model = CustomField
    extra = 0
    fields = ("position", "key", "label", "field_type", "required", "max_length", "min_value", "max_value")
    ordering = ("position", "id")


class SubscriptionPlanInline(admin.TabularInline):  # type: ignore[type-arg]
    model = SubscriptionPlan
    extra = 0
    fields = ("position", "name", "billing_cycle", "price_multiplier", "price_delta")
    ordering = ("position", "id")


@admin.register(CatalogProduct)
class CatalogProductAdmin(admin.ModelAdmin[CatalogProduct]):
    list_display = (
        "slug",
        "name",
        "project",
        "active",
        "unit_amount",
        "currency",
        "feature_code",
        "purchase_duration_days",
        "stripe_product_id",
    )
    list_filter = ("project", "active", ("feature_code", admin.EmptyFieldListFilter))
    search_fields = ("slug", "name", "stripe_product_id", "feature_code")
    list_select_related = ("project",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("project", "slug", "name", "description", "active", "unit_amount", "currency")}),
        (
            "What a paid invoice line entitles to",
            {
                "fields": ("feature_code", "purchase_duration_days"),
                "description": "A paid invoice line of this product becomes a purchase of this feature code for "
                "this many days (blank: for life). No feature code: the line grants nothing.",
            },
        ),
        ("Stripe", {"fields": ("stripe_product_id", "created_at", "updated_at")}),
    )
    inlines = [OptionGroupInline, AddOnInline, CustomFieldInline, SubscriptionPlanInline]


class OptionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Option
    extra = 0
    fields = ("position", "name", "price_delta")
    ordering = ("position", "id")


@admin.register(OptionGroup)
class OptionGroupAdmin(admin.ModelAdmin[OptionGroup]):
    list_display = ("name", "product", "selection", "required", "position")
    list_filter = ("product__project", "selection")
    search_fields = ("name", "product__slug", "product__name")
    list_select_related = ("product__project",)
    inlines = [OptionInline]


@admin.register(PriceFeature)
class PriceFeatureAdmin(admin.ModelAdmin[PriceFeature]):
    list_display = ("project", "stripe_price_id", "feature_code", "purchase_duration_days")
    list_filter = ("project", "feature_code")
    search_fields = ("stripe_price_id", "feature_code")
    list_select_related = ("project",)
