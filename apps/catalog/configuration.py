"""Product configuration: replacing it, and validating a buyer's custom-field values against it.

A replace is all or nothing: the serializers have validated every item before we get here, and this
module checks the ids and writes inside one transaction, under a lock on the product row so that two
replaces of one product run one after the other.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models, transaction
from django.db.models.functions import Cast, Concat

from apps.catalog.models import AddOn, CatalogProduct, CustomField, Option, OptionGroup, SubscriptionPlan
from apps.common.exceptions import NestedValidationError

COLLECTIONS: tuple[str, ...] = ("option_groups", "add_ons", "custom_fields", "subscription_plans")
CONFIGURATION_PREFETCH: tuple[str, ...] = ("option_groups__options", "add_ons", "custom_fields", "subscription_plans")

# Written fields per collection (besides position, which is the item's index in its list).
_FIELDS: dict[str, tuple[str, ...]] = {
    "option_groups": ("name", "selection", "required"),
    "add_ons": ("name", "description", "price_delta"),
    "custom_fields": ("key", "label", "field_type", "required", "max_length", "min_value", "max_value"),
    "subscription_plans": ("name", "billing_cycle", "price_multiplier", "price_delta"),
}
_OPTION_FIELDS = ("name", "price_delta")
# Untyped values without a declared limit still get one, so that nobody stores a novel in a field.
TEXT_VALUE_DEFAULT_MAX = 1000
URL_VALUE_MAX = 2000
_validate_url = URLValidator(schemes=["http", "https"])
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,18}")  # form posts send numbers as text


def configuration_replace(
    *, product: CatalogProduct, configuration: Mapping[str, Any], collections: Iterable[str] = COLLECTIONS
) -> None:
    """Replaces the given collections of the product's configuration with the validated items.

    Items carrying an `id` update that row (so its id, which invoices refer to, survives); items
    without one are created; existing rows not named are deleted. A collection named in
    `collections` but absent from `configuration` is emptied (the PUT semantics).
    """
    names = [name for name in COLLECTIONS if name in set(collections)]
    with transaction.atomic():
        # The lock makes the id check below and the writes one step for concurrent replaces.
        CatalogProduct.objects.select_for_update().filter(pk=product.pk).first()
        configuration_check_ids(product=product, configuration=configuration, collections=names)
        for name in names:
            items: list[dict[str, Any]] = list(configuration.get(name, []))
            if name == "option_groups":
                _option_groups_write(product=product, groups=items)
            else:
                manager = getattr(product, name)
                _sync(
                    queryset=manager.all(),
                    items=items,
                    fields=_FIELDS[name],
                    unique="key" if name == "custom_fields" else "name",
                    parent={"product": product},
                )
        product.save(update_fields=["updated_at"])


def configuration_check_ids(
    *, product: CatalogProduct, configuration: Mapping[str, Any], collections: Sequence[str] = COLLECTIONS
) -> None:
    """Every `id` must name an existing item of this product (an option: of the group it is listed
    under); anything else is a 400 naming the item, before anything is written."""
    models_by_name: dict[str, type[models.Model]] = {
        "option_groups": OptionGroup,
        "add_ons": AddOn,
        "custom_fields": CustomField,
        "subscription_plans": SubscriptionPlan,
    }
    options_of: dict[int, set[int]] = defaultdict(set)
    for group_id, option_id in Option.objects.filter(group__product=product).values_list("group_id", "id"):
        options_of[group_id].add(option_id)
    # Errors are keyed by item index, as DRF's own list errors are (LIST_SERIALIZER_ERRORS_AS_DICT).
    errors: dict[str, Any] = {}
    for name in collections:
        own = set(models_by_name[name]._default_manager.filter(product=product).values_list("id", flat=True))
        for index, item in enumerate(configuration.get(name, [])):
            error: dict[str, Any] = {}
            if item.get("id") is not None and item["id"] not in own:
                error["id"] = [f"{item['id']} is not an item of this product's {name}."]
            if name == "option_groups":
                allowed = options_of.get(item.get("id") or 0, set()) if "id" not in error else set()
                option_errors = {
                    position: {"id": [f"{option['id']} is not an option of this group."]}
                    for position, option in enumerate(item["options"])
                    if option.get("id") is not None and option["id"] not in allowed
                }
                if option_errors:
                    error["options"] = option_errors
            if error:
                errors.setdefault(name, {})[index] = error
    if errors:
        raise NestedValidationError(errors)


def _option_groups_write(*, product: CatalogProduct, groups: list[dict[str, Any]]) -> None:
    saved = _sync(
        queryset=product.option_groups.all(),
        items=groups,
        fields=_FIELDS["option_groups"],
        unique="name",
        parent={"product": product},
    )
    for group, item in zip(saved, groups, strict=True):
        _sync(
            queryset=group.options.all(),
            items=item["options"],
            fields=_OPTION_FIELDS,
            unique="name",
            parent={"group": group},
        )


def _sync(
    *,
    queryset: models.QuerySet[Any],
    items: list[dict[str, Any]],
    fields: tuple[str, ...],
    unique: str,
    parent: dict[str, Any],
) -> list[Any]:
    model = queryset.model
    existing = {row.pk: row for row in queryset}
    kept = {item["id"] for item in items if item.get("id") is not None}
    queryset.exclude(pk__in=kept).delete()
    if kept:
        # Park the kept rows under placeholder names first: a request may swap two names, and
        # updating the rows one by one would trip the unique constraint half way through. The
        # placeholder's control character can never be in a real name (the serializers reject it).
        model._default_manager.filter(pk__in=kept).update(
            **{unique: Concat(models.Value("\x1f"), Cast("pk", models.CharField()))}
        )
    saved = []
    for position, item in enumerate(items):
        values = {field: item[field] for field in fields} | {"position": position}
        if item.get("id") is not None:
            row = existing[item["id"]]
            for field, value in values.items():
                setattr(row, field, value)
            row.save(update_fields=list(values))
        else:
            row = model._default_manager.create(**parent, **values)
        saved.append(row)
    return saved


def custom_field_values_validate(product: CatalogProduct, values: Mapping[str, Any]) -> dict[str, Any]:
    """The buyer's values for the product's custom fields, checked and normalised.

    Required fields must be present and not blank; text is stripped and within its max_length; a URL
    is an http(s) URL; a number is a JSON integer (or a string of one) within its bounds; unknown keys
    are rejected. Optional fields left out or blank are left out of the result. Raises a DRF
    Django ValidationError keyed by each bad field's key.
    """
    if not isinstance(values, Mapping):
        raise ValidationError({"custom_fields": ["Expected an object of custom field values."]})
    fields = {field.key: field for field in product.custom_fields.all()}
    errors: dict[str, list[str]] = {key: ["Unknown custom field."] for key in values if key not in fields}
    cleaned: dict[str, Any] = {}
    for key, field in fields.items():
        raw = values.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if field.required:
                errors[key] = ["This field is required."]
            continue
        try:
            cleaned[key] = _custom_value_clean(field, raw)
        except ValueError as exc:
            errors[key] = [str(exc)]
    if errors:
        raise ValidationError(errors)
    return cleaned


def _custom_value_clean(field: CustomField, raw: Any) -> str | int:
    if field.field_type == CustomField.FieldType.NUMBER:
        if isinstance(raw, str) and _INTEGER_TEXT.fullmatch(raw.strip()):
            raw = int(raw.strip())
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError("A whole number is required.")
        number: int = raw
        if field.min_value is not None and number < field.min_value:
            raise ValueError(f"Ensure this value is greater than or equal to {field.min_value}.")
        if field.max_value is not None and number > field.max_value:
            raise ValueError(f"Ensure this value is less than or equal to {field.max_value}.")
        return number
    if not isinstance(raw, str):
        raise ValueError("A string is required.")
    text = raw.strip()
    if field.field_type == CustomField.FieldType.URL:
        try:
            if len(text) > URL_VALUE_MAX:
                raise ValidationError("too long")
            _validate_url(text)
        except ValidationError:
            raise ValueError(f"Enter a valid http or https URL of at most {URL_VALUE_MAX} characters.") from None
        return text
    limit = field.max_length or TEXT_VALUE_DEFAULT_MAX
    if len(text) > limit:
        raise ValueError(f"Ensure this value has at most {limit} characters.")
    return text
