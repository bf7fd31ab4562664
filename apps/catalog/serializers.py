"""Serializers shared by the product endpoints: the configuration, in and out, and a product out.

Class names are unique across the project because drf-spectacular names schema components after
them (a collision is a schema warning, and the schema build fails on warnings).

Two kinds of `type: ignore` below: fields named `required` or `label` clash in the stubs with
Field's own attributes of those names (DRF's metaclass takes declared fields off the class, so there
is no clash at run time); and DRF's ListSerializer takes `max_length`, which the stubs lack.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog.models import CatalogProduct
from apps.catalog.models.configuration import (
    CUSTOM_FIELD_KEY_PATTERN,
    NUMBER_LIMIT,
    PRICE_DELTA_MAX,
    PRICE_DELTA_MIN,
    PRICE_MULTIPLIER_MAX,
    PRICE_MULTIPLIER_MIN,
    TEXT_MAX_LENGTH_LIMIT,
    CustomField,
    OptionGroup,
    SubscriptionPlan,
)

# Control characters are never part of a name; excluding them also keeps the placeholder names the
# replace service parks rows under (see configuration._sync) out of reach of real names.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_characters(value: str) -> None:
    if _CONTROL.search(value):
        raise serializers.ValidationError("Control characters are not allowed.")


class StrictIntegerField(serializers.IntegerField):
    """An integer that must be a JSON integer: 1499.0, "1499" and true are rejected, since money
    and bounds are never floats and a string or boolean here is a caller's bug."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def _name_field() -> serializers.CharField:
    return serializers.CharField(max_length=100, validators=[_no_control_characters])


def _price_delta_field(**kwargs: Any) -> StrictIntegerField:
    return StrictIntegerField(min_value=PRICE_DELTA_MIN, max_value=PRICE_DELTA_MAX, **kwargs)


def _id_field() -> serializers.IntegerField:
    return StrictIntegerField(
        required=False, min_value=1, help_text="An existing item's id keeps it (and its id); omit it to create."
    )


def _check_unique(items: list[dict[str, Any]], field: str, *, fold_case: bool) -> dict[int, dict[str, Any]]:
    """Errors of the items repeating an earlier item's `field` or id, keyed by the item's index as
    DRF's own list errors are (LIST_SERIALIZER_ERRORS_AS_DICT); empty when there are none."""
    seen_values: set[str] = set()
    seen_ids: set[int] = set()
    errors: dict[int, dict[str, Any]] = {}
    for index, item in enumerate(items):
        value = item[field].lower() if fold_case else item[field]
        if value in seen_values:
            errors.setdefault(index, {})[field] = [f"Duplicate {field}."]
        if item.get("id") is not None and item["id"] in seen_ids:
            errors.setdefault(index, {})["id"] = ["Duplicate id."]
        seen_values.add(value)
        if item.get("id") is not None:
            seen_ids.add(item["id"])
    return errors


class ConfigOptionInputSerializer(serializers.Serializer[Any]):
    id = _id_field()
    name = _name_field()
    price_delta = _price_delta_field(default=0)


class ConfigOptionGroupInputSerializer(serializers.Serializer[Any]):
    id = _id_field()
    name = _name_field()
    selection = serializers.ChoiceField(choices=OptionGroup.Selection.choices)
    required = serializers.BooleanField(default=False)  # type: ignore[assignment]
    options = ConfigOptionInputSerializer(many=True, max_length=100, help_text="In display order.")  # type: ignore[call-arg]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        duplicates: dict[str, Any] = {"options": _check_unique(attrs["options"], "name", fold_case=True)}
        if duplicates["options"]:
            raise serializers.ValidationError(duplicates)
        if attrs["required"] and not attrs["options"]:
            raise serializers.ValidationError({"options": ["A required group needs at least one option."]})
        return attrs


class ConfigAddOnInputSerializer(serializers.Serializer[Any]):
    id = _id_field()
    name = _name_field()
    description = serializers.CharField(max_length=2000, allow_blank=True, default="")
    price_delta = _price_delta_field(help_text="Added to the product's unit_amount (minor units); negative for less.")


class ConfigCustomFieldInputSerializer(serializers.Serializer[Any]):
    id = _id_field()
    key = serializers.RegexField(CUSTOM_FIELD_KEY_PATTERN, max_length=64)
    label = serializers.CharField(max_length=200, validators=[_no_control_characters])  # type: ignore[assignment]
    field_type = serializers.ChoiceField(choices=CustomField.FieldType.choices)
    required = serializers.BooleanField(default=False)  # type: ignore[assignment]
    max_length = StrictIntegerField(
        min_value=1, max_value=TEXT_MAX_LENGTH_LIMIT, allow_null=True, default=None, help_text="Text fields only."
    )
    min_value = StrictIntegerField(
        min_value=-NUMBER_LIMIT, max_value=NUMBER_LIMIT, allow_null=True, default=None, help_text="Number fields only."
    )
    max_value = StrictIntegerField(
        min_value=-NUMBER_LIMIT, max_value=NUMBER_LIMIT, allow_null=True, default=None, help_text="Number fields only."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        if attrs["max_length"] is not None and attrs["field_type"] != CustomField.FieldType.TEXT:
            errors["max_length"] = ["Only text fields have a max_length."]
        for bound in ("min_value", "max_value"):
            if attrs[bound] is not None and attrs["field_type"] != CustomField.FieldType.NUMBER:
                errors[bound] = [f"Only number fields have a {bound}."]
        low, high = attrs["min_value"], attrs["max_value"]
        if low is not None and high is not None and low > high:
            errors["min_value"] = ["min_value must not exceed max_value."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ConfigSubscriptionPlanInputSerializer(serializers.Serializer[Any]):
    id = _id_field()
    name = _name_field()
    billing_cycle = serializers.ChoiceField(choices=SubscriptionPlan.BillingCycle.choices)
    price_multiplier = serializers.DecimalField(
        max_digits=8,
        decimal_places=4,
        min_value=PRICE_MULTIPLIER_MIN,
        max_value=PRICE_MULTIPLIER_MAX,
        allow_null=True,
        default=None,
        help_text='A factor in (0, 100] with at most 4 decimals, e.g. "0.9". Exactly one of this and price_delta.',
    )
    price_delta = _price_delta_field(
        allow_null=True, default=None, help_text="Minor units. Exactly one of this and price_multiplier."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs["price_multiplier"] is None) == (attrs["price_delta"] is None):
            raise serializers.ValidationError(
                {"price_multiplier": ["Give exactly one of price_multiplier and price_delta."]}
            )
        return attrs


class ConfigurationInputSerializer(serializers.Serializer[Any]):
    option_groups = ConfigOptionGroupInputSerializer(many=True, required=False, max_length=50)  # type: ignore[call-arg]
    add_ons = ConfigAddOnInputSerializer(many=True, required=False, max_length=50)  # type: ignore[call-arg]
    custom_fields = ConfigCustomFieldInputSerializer(many=True, required=False, max_length=50)  # type: ignore[call-arg]
    subscription_plans = ConfigSubscriptionPlanInputSerializer(many=True, required=False, max_length=20)  # type: ignore[call-arg]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unique_by = {"option_groups": "name", "add_ons": "name", "custom_fields": "key", "subscription_plans": "name"}
        errors: dict[str, Any] = {
            collection: found
            for collection, field in unique_by.items()
            if collection in attrs and (found := _check_unique(attrs[collection], field, fold_case=field == "name"))
        }
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- Output ---------------------------------------------------------------------------------------


class ConfigOptionOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    price_delta = serializers.IntegerField()


class ConfigOptionGroupOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    selection = serializers.ChoiceField(choices=OptionGroup.Selection.choices)
    required = serializers.BooleanField()  # type: ignore[assignment]
    options = ConfigOptionOutputSerializer(many=True)


class ConfigAddOnOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    price_delta = serializers.IntegerField()


class ConfigCustomFieldOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    field_type = serializers.ChoiceField(choices=CustomField.FieldType.choices)
    required = serializers.BooleanField()  # type: ignore[assignment]
    max_length = serializers.IntegerField(allow_null=True)
    min_value = serializers.IntegerField(allow_null=True)
    max_value = serializers.IntegerField(allow_null=True)


class ConfigSubscriptionPlanOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    billing_cycle = serializers.ChoiceField(choices=SubscriptionPlan.BillingCycle.choices)
    # A decimal string ("0.9000"), so that no client parses it as a float.
    price_multiplier = serializers.DecimalField(max_digits=8, decimal_places=4, allow_null=True)
    price_delta = serializers.IntegerField(allow_null=True)


class ConfigurationOutputSerializer(serializers.Serializer[Any]):
    option_groups = ConfigOptionGroupOutputSerializer(many=True)
    add_ons = ConfigAddOnOutputSerializer(many=True)
    custom_fields = ConfigCustomFieldOutputSerializer(many=True)
    subscription_plans = ConfigSubscriptionPlanOutputSerializer(many=True)


class ProductPriceOutputSerializer(serializers.Serializer[Any]):
    price_id = serializers.CharField()
    product_id = serializers.CharField()
    unit_amount = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField()
    recurring = serializers.DictField(allow_null=True)
    active = serializers.BooleanField()
    feature_code = serializers.CharField(allow_null=True)
    purchase_duration_days = serializers.IntegerField(allow_null=True)


class ProductOutputSerializer(serializers.Serializer[Any]):
    """A product with its Stripe prices (context "prices": Stripe product id → prices) and configuration."""

    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    active = serializers.BooleanField()
    unit_amount = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField()
    feature_code = serializers.CharField(
        help_text="What a paid invoice line of this product entitles to, as a purchase; empty: nothing."
    )
    purchase_duration_days = serializers.IntegerField(
        allow_null=True, help_text="How long that purchase lasts, in days; null: for life."
    )
    stripe_product_id = serializers.CharField(allow_null=True)
    prices = serializers.SerializerMethodField()
    configuration = ConfigurationOutputSerializer(source="*")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(ProductPriceOutputSerializer(many=True))
    def get_prices(self, product: CatalogProduct) -> list[Any]:
        if not product.stripe_product_id:
            return []
        return list(self.context.get("prices", {}).get(product.stripe_product_id, []))
