"""A project's products and the feature codes its Stripe prices grant.

Stripe's own product and price objects are mirrored by dj-stripe (djstripe.Product/Price, their
fields in `stripe_data`). These rows say which project owns a Stripe product (several projects can
share one Stripe account) and what buying a price entitles to.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from apps.projects.models import Project

FEATURE_CODE_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"
validate_feature_code = RegexValidator(
    FEATURE_CODE_PATTERN, "A feature code is 1-64 lowercase letters, digits, '_', '.', ':' or '-'."
)
validate_currency = RegexValidator(r"^[a-z]{3}$", "A currency is a lower-case ISO 4217 code, such as usd.")


class CatalogProduct(models.Model):
    """A product of one project: its base fields, its configuration, and its Stripe product if any."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="products")
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    # The base price of the configured product in minor units (invoices add option and add-on deltas).
    unit_amount = models.PositiveIntegerField(null=True, blank=True, validators=[MaxValueValidator(99_999_999)])
    currency = models.CharField(max_length=3, blank=True, validators=[validate_currency])
    # What a paid invoice line of this product entitles to (empty: nothing), and for how long
    # (null: for life), as a purchase. Set through the products API and the admin.
    feature_code = models.CharField(max_length=64, blank=True, validators=[validate_feature_code])
    purchase_duration_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(36500)]
    )
    # A Stripe product belongs to at most one project; null for a product that exists only here.
    stripe_product_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project__slug", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="catalog_product_unique_slug_per_project"),
            models.CheckConstraint(
                condition=(models.Q(unit_amount__isnull=True, currency="") | models.Q(unit_amount__isnull=False))
                & ~models.Q(unit_amount__isnull=False, currency=""),
                name="catalog_product_amount_has_currency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.slug}"


class PriceFeature(models.Model):
    """What buying a Stripe price grants: a feature code, and for one-time prices, for how long."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="price_features")
    stripe_price_id = models.CharField(max_length=255)
    feature_code = models.CharField(max_length=64, validators=[validate_feature_code])
    # One-time prices only: how many days a purchase entitles; null means for life.
    purchase_duration_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(36_500)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project__slug", "feature_code"]
        constraints = [
            models.UniqueConstraint(fields=["project", "stripe_price_id"], name="price_feature_unique_per_project"),
        ]
        indexes = [models.Index(fields=["project", "feature_code"])]

    def __str__(self) -> str:
        return f"{self.project.slug}:{self.stripe_price_id} → {self.feature_code}"
