"""Product configuration: option groups and options, add-ons, custom fields, subscription plans.

Every amount here is an integer delta in the product's currency's minor units, added to the product's
`unit_amount` when the item is chosen (negative for a discount). Rows are ordered by `position`,
which the API sets from the order of the submitted lists. Names and keys are unique per product
(per group for options), case-insensitively for names, so that "Size" and "size" cannot both exist.
Validation lives in the API serializers and the model validators (for the admin); the constraints
below are the database's backstop.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower

from apps.catalog.models.products import CatalogProduct

PRICE_DELTA_MIN = -100_000
PRICE_DELTA_MAX = 100_000
PRICE_MULTIPLIER_MIN = Decimal("0.0001")  # (0, 100] with four decimal places
PRICE_MULTIPLIER_MAX = Decimal("100")
TEXT_MAX_LENGTH_LIMIT = 10_000
NUMBER_LIMIT = 10**15  # custom-field number bounds stay well inside a 64-bit integer
CUSTOM_FIELD_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
validate_custom_field_key = RegexValidator(
    CUSTOM_FIELD_KEY_PATTERN, "A key is 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit."
)
PRICE_DELTA_VALIDATORS = [MinValueValidator(PRICE_DELTA_MIN), MaxValueValidator(PRICE_DELTA_MAX)]


def _delta_in_range(field: str) -> models.Q:
    return models.Q(**{f"{field}__gte": PRICE_DELTA_MIN, f"{field}__lte": PRICE_DELTA_MAX})


class OptionGroup(models.Model):
    """A choice the buyer makes (size, colour): exactly one option, or any number of them."""

    class Selection(models.TextChoices):
        SINGLE = "single", "Single"
        MULTIPLE = "multiple", "Multiple"

    product = models.ForeignKey(CatalogProduct, on_delete=models.CASCADE, related_name="option_groups")
    name = models.CharField(max_length=100)
    selection = models.CharField(max_length=8, choices=Selection.choices, default=Selection.SINGLE)
    required = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "product", name="catalog_option_group_unique_name"),
            models.CheckConstraint(
                condition=models.Q(selection__in=["single", "multiple"]), name="catalog_option_group_selection"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Option(models.Model):
    """One choice of a group. Its id stays stable across API replaces, since invoices refer to it."""

    group = models.ForeignKey(OptionGroup, on_delete=models.CASCADE, related_name="options")
    name = models.CharField(max_length=100)
    price_delta = models.IntegerField(default=0, validators=PRICE_DELTA_VALIDATORS)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "group", name="catalog_option_unique_name"),
            models.CheckConstraint(condition=_delta_in_range("price_delta"), name="catalog_option_price_delta"),
        ]

    def __str__(self) -> str:
        return self.name


class AddOn(models.Model):
    """An extra the buyer may add; `price_delta` is what it adds to the product's price."""

    product = models.ForeignKey(CatalogProduct, on_delete=models.CASCADE, related_name="add_ons")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    price_delta = models.IntegerField(default=0, validators=PRICE_DELTA_VALIDATORS)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "product", name="catalog_add_on_unique_name"),
            models.CheckConstraint(condition=_delta_in_range("price_delta"), name="catalog_add_on_price_delta"),
        ]

    def __str__(self) -> str:
        return self.name


class CustomField(models.Model):
    """A value the buyer types in (a domain, a URL, a seat count); see custom_field_values_validate."""

    class FieldType(models.TextChoices):
        TEXT = "text", "Text"
        URL = "url", "URL"
        NUMBER = "number", "Number (integer)"

    product = models.ForeignKey(CatalogProduct, on_delete=models.CASCADE, related_name="custom_fields")
    key = models.CharField(max_length=64, validators=[validate_custom_field_key])
    label = models.CharField(max_length=200)
    field_type = models.CharField(max_length=6, choices=FieldType.choices, default=FieldType.TEXT)
    required = models.BooleanField(default=False)
    # Text only.
    max_length = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(TEXT_MAX_LENGTH_LIMIT)]
    )
    # Number only; integers, inclusive.
    min_value = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(-NUMBER_LIMIT), MaxValueValidator(NUMBER_LIMIT)]
    )
    max_value = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(-NUMBER_LIMIT), MaxValueValidator(NUMBER_LIMIT)]
    )
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "key"], name="catalog_custom_field_unique_key"),
            models.CheckConstraint(
                condition=models.Q(field_type__in=["text", "url", "number"]), name="catalog_custom_field_type"
            ),
            models.CheckConstraint(
                condition=models.Q(max_length__isnull=True)
                | models.Q(field_type="text", max_length__gte=1, max_length__lte=TEXT_MAX_LENGTH_LIMIT),
                name="catalog_custom_field_max_length_for_text",
            ),
            models.CheckConstraint(
                condition=models.Q(field_type="number") | models.Q(min_value__isnull=True, max_value__isnull=True),
                name="catalog_custom_field_bounds_for_number",
            ),
            models.CheckConstraint(
                condition=models.Q(min_value__isnull=True)
                | models.Q(max_value__isnull=True)
                | models.Q(min_value__lte=models.F("max_value")),
                name="catalog_custom_field_min_le_max",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class SubscriptionPlan(models.Model):
    """How often the product is billed, priced from the base by a multiplier or by a delta (one of them).

    The multiplier is a factor, not money (0.9 for 10% off a monthly price, 10.0 for an annual price
    worth ten months); whoever computes an amount from it rounds to an integer in minor units.
    """

    class BillingCycle(models.TextChoices):
        ONE_TIME = "one_time", "One time"
        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"
        ANNUAL = "annual", "Annual"

    product = models.ForeignKey(CatalogProduct, on_delete=models.CASCADE, related_name="subscription_plans")
    name = models.CharField(max_length=100)
    billing_cycle = models.CharField(max_length=9, choices=BillingCycle.choices)
    price_multiplier = models.DecimalField(
        max_digits=8,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(PRICE_MULTIPLIER_MIN), MaxValueValidator(PRICE_MULTIPLIER_MAX)],
    )
    price_delta = models.IntegerField(null=True, blank=True, validators=PRICE_DELTA_VALIDATORS)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "product", name="catalog_plan_unique_name"),
            models.CheckConstraint(
                condition=models.Q(billing_cycle__in=["one_time", "monthly", "quarterly", "annual"]),
                name="catalog_plan_billing_cycle",
            ),
            models.CheckConstraint(
                condition=models.Q(price_multiplier__isnull=False, price_delta__isnull=True)
                | models.Q(price_multiplier__isnull=True, price_delta__isnull=False),
                name="catalog_plan_multiplier_xor_delta",
                violation_error_message="Give exactly one of price_multiplier and price_delta.",
            ),
            models.CheckConstraint(
                condition=models.Q(price_multiplier__isnull=True)
                | models.Q(price_multiplier__gt=0, price_multiplier__lte=PRICE_MULTIPLIER_MAX),
                name="catalog_plan_multiplier_range",
            ),
            models.CheckConstraint(
                condition=models.Q(price_delta__isnull=True) | _delta_in_range("price_delta"),
                name="catalog_plan_price_delta",
            ),
        ]

    def __str__(self) -> str:
        return self.name
