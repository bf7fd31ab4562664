"""Validation of product configuration (every rule, through PUT .../options), the all-or-nothing
replace, kept ids, and custom-field value validation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.catalog.configuration import custom_field_values_validate
from apps.catalog.models import AddOn, CatalogProduct, CustomField, Option, OptionGroup, SubscriptionPlan
from tests.conftest import Tenant
from tests.factories import CatalogProductFactory, CustomFieldFactory, OptionGroupFactory

pytestmark = pytest.mark.django_db


def product_of(tenant: Tenant, slug: str = "audit") -> CatalogProduct:
    """A product with no base price: the tests of unit_amount and currency rely on both being unset."""
    return CatalogProductFactory.create(
        project=tenant.project, slug=slug, name=slug.title(), unit_amount=None, currency=""
    )


def full_configuration() -> dict[str, Any]:
    return {
        "option_groups": [
            {
                "name": "Size",
                "selection": "single",
                "required": True,
                "options": [{"name": "Small", "price_delta": 0}, {"name": "Large", "price_delta": 500}],
            },
            {"name": "Extras", "selection": "multiple", "options": [{"name": "Gift wrap", "price_delta": 300}]},
        ],
        "add_ons": [{"name": "Support", "description": "Fast answers", "price_delta": 900}],
        "custom_fields": [
            {"key": "domain", "label": "Domain", "field_type": "text", "required": True, "max_length": 20},
            {"key": "site", "label": "Site", "field_type": "url"},
            {"key": "seats", "label": "Seats", "field_type": "number", "min_value": 1, "max_value": 10},
        ],
        "subscription_plans": [
            {"name": "Monthly", "billing_cycle": "monthly", "price_delta": 0},
            {"name": "Annual", "billing_cycle": "annual", "price_multiplier": "10.0"},
        ],
    }


def snapshot(product: CatalogProduct) -> dict[str, Any]:
    """Every row of the product's configuration, ids and positions included."""
    return {
        "product": CatalogProduct.objects.filter(pk=product.pk).values().get(),
        "groups": list(OptionGroup.objects.filter(product=product).order_by("id").values()),
        "options": list(Option.objects.filter(group__product=product).order_by("id").values()),
        "add_ons": list(AddOn.objects.filter(product=product).order_by("id").values()),
        "fields": list(CustomField.objects.filter(product=product).order_by("id").values()),
        "plans": list(SubscriptionPlan.objects.filter(product=product).order_by("id").values()),
    }


def put(tenant: Tenant, product: CatalogProduct, body: dict[str, Any]) -> Any:
    return tenant.client().put(f"/api/v1/products/{product.pk}/options", body, format="json")


def configured(tenant: Tenant) -> CatalogProduct:
    product = product_of(tenant)
    assert put(tenant, product, full_configuration()).status_code == 200
    return product


def with_item(collection: str, index: int, **changes: Any) -> dict[str, Any]:
    body = full_configuration()
    body[collection][index].update(changes)
    return body


def test_a_full_configuration_is_stored_in_order_and_returned(alice: Tenant) -> None:
    product = product_of(alice)
    response = put(alice, product, full_configuration())
    assert response.status_code == 200, response.json()
    configuration = response.json()["configuration"]
    assert [g["name"] for g in configuration["option_groups"]] == ["Size", "Extras"]
    assert [o["name"] for o in configuration["option_groups"][0]["options"]] == ["Small", "Large"]
    assert configuration["option_groups"][0]["options"][1]["price_delta"] == 500
    assert configuration["add_ons"][0] == {
        "id": AddOn.objects.get().pk,
        "name": "Support",
        "description": "Fast answers",
        "price_delta": 900,
    }
    assert configuration["subscription_plans"][1]["price_multiplier"] == "10.0000"
    assert configuration["subscription_plans"][1]["price_delta"] is None
    assert SubscriptionPlan.objects.get(name="Annual").price_multiplier == Decimal("10")
    assert [f["key"] for f in configuration["custom_fields"]] == ["domain", "site", "seats"]


@pytest.mark.parametrize("delta", [-100_000, 100_000, 0])
def test_price_delta_bounds_are_inclusive(alice: Tenant, delta: int) -> None:
    body = full_configuration()
    body["option_groups"][0]["options"][0]["price_delta"] = delta
    body["add_ons"][0]["price_delta"] = delta
    body["subscription_plans"][0]["price_delta"] = delta
    assert put(alice, product_of(alice), body).status_code == 200


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        (100_001, "Ensure this value is less than or equal to 100000."),
        (-100_001, "Ensure this value is greater than or equal to -100000."),
        (1.5, "A valid integer is required."),
        (100.0, "A valid integer is required."),
        ("100", "A valid integer is required."),
        (True, "A valid integer is required."),
    ],
)
def test_an_option_price_delta_out_of_range_or_not_an_integer_is_rejected_naming_it(
    alice: Tenant, delta: Any, message: str
) -> None:
    body = full_configuration()
    body["option_groups"][1]["options"][0]["price_delta"] = delta
    response = put(alice, product_of(alice), body)
    assert response.status_code == 400
    assert response.json() == {"option_groups": {"1": {"options": {"0": {"price_delta": [message]}}}}}


@pytest.mark.parametrize("collection", ["add_ons", "subscription_plans"])
@pytest.mark.parametrize("delta", [100_001, -100_001])
def test_add_on_and_plan_price_deltas_are_bounded(alice: Tenant, collection: str, delta: int) -> None:
    response = put(alice, product_of(alice), with_item(collection, 0, price_delta=delta))
    assert response.status_code == 400
    assert list(response.json()[collection]["0"]) == ["price_delta"]


@pytest.mark.parametrize(
    ("collection", "field", "value"),
    [
        ("option_groups", "selection", "several"),
        ("custom_fields", "field_type", "email"),
        ("subscription_plans", "billing_cycle", "weekly"),
    ],
)
def test_an_unknown_enum_value_is_rejected(alice: Tenant, collection: str, field: str, value: str) -> None:
    response = put(alice, product_of(alice), with_item(collection, 0, **{field: value}))
    assert response.status_code == 400
    assert response.json()[collection] == {"0": {field: [f'"{value}" is not a valid choice.']}}


@pytest.mark.parametrize("cycle", ["one_time", "monthly", "quarterly", "annual"])
def test_every_billing_cycle_is_accepted(alice: Tenant, cycle: str) -> None:
    assert put(alice, product_of(alice), with_item("subscription_plans", 0, billing_cycle=cycle)).status_code == 200


@pytest.mark.parametrize(
    ("collection", "field"),
    [
        ("option_groups", "name"),
        ("option_groups", "selection"),
        ("option_groups", "options"),
        ("add_ons", "name"),
        ("add_ons", "price_delta"),
        ("custom_fields", "key"),
        ("custom_fields", "label"),
        ("custom_fields", "field_type"),
        ("subscription_plans", "name"),
        ("subscription_plans", "billing_cycle"),
    ],
)
def test_a_missing_required_item_field_is_named(alice: Tenant, collection: str, field: str) -> None:
    body = full_configuration()
    del body[collection][0][field]
    response = put(alice, product_of(alice), body)
    assert response.status_code == 400
    assert response.json()[collection] == {"0": {field: ["This field is required."]}}


def test_a_required_group_needs_an_option(alice: Tenant) -> None:
    response = put(alice, product_of(alice), with_item("option_groups", 0, options=[]))
    assert response.status_code == 400
    assert response.json()["option_groups"] == {"0": {"options": ["A required group needs at least one option."]}}
    optional_empty = with_item("option_groups", 0, options=[], required=False)
    assert put(alice, product_of(alice, "other"), optional_empty).status_code == 200


@pytest.mark.parametrize(
    ("multiplier", "delta", "ok"),
    [
        ("0.9", None, True),
        ("100", None, True),
        ("0.0001", None, True),
        (None, 250, True),
        ("0", None, False),
        ("-1", None, False),
        ("100.0001", None, False),
        ("0.12345", None, False),
        ("1.5", 100, False),
        (None, None, False),
    ],
)
def test_a_plan_has_exactly_one_of_a_bounded_multiplier_and_a_delta(
    alice: Tenant, multiplier: str | None, delta: int | None, ok: bool
) -> None:
    body = full_configuration()
    body["subscription_plans"][0] = {
        "name": "Monthly",
        "billing_cycle": "monthly",
        "price_multiplier": multiplier,
        "price_delta": delta,
    }
    response = put(alice, product_of(alice), body)
    assert response.status_code == (200 if ok else 400), response.json()
    if not ok:
        assert list(response.json()["subscription_plans"]) == ["0"]
        assert "price_multiplier" in response.json()["subscription_plans"]["0"]


def test_the_database_refuses_a_plan_with_both_or_neither(alice: Tenant) -> None:
    product = product_of(alice)
    for multiplier, delta in [(Decimal("1.5"), 10), (None, None)]:
        with pytest.raises(IntegrityError), transaction.atomic():
            SubscriptionPlan.objects.create(
                product=product, name="x", billing_cycle="monthly", price_multiplier=multiplier, price_delta=delta
            )


def test_the_database_refuses_an_option_delta_out_of_range(alice: Tenant) -> None:
    group = OptionGroupFactory.create(product=product_of(alice), name="Size")
    with pytest.raises(IntegrityError), transaction.atomic():
        Option.objects.create(group=group, name="Huge", price_delta=100_001)


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"field_type": "url", "max_length": 10}, {"max_length": ["Only text fields have a max_length."]}),
        ({"field_type": "text", "min_value": 1}, {"min_value": ["Only number fields have a min_value."]}),
        ({"field_type": "url", "max_value": 1}, {"max_value": ["Only number fields have a max_value."]}),
        (
            {"field_type": "number", "min_value": 5, "max_value": 4},
            {"min_value": ["min_value must not exceed max_value."]},
        ),
        ({"max_length": 0}, {"max_length": ["Ensure this value is greater than or equal to 1."]}),
        ({"max_length": 10_001}, {"max_length": ["Ensure this value is less than or equal to 10000."]}),
        ({"key": "Has Space"}, {"key": ["This value does not match the required pattern."]}),
    ],
)
def test_custom_field_definitions_are_validated(alice: Tenant, changes: dict[str, Any], errors: Any) -> None:
    body = full_configuration()
    body["custom_fields"][0] = {"key": "domain", "label": "Domain", "field_type": "text"} | changes
    response = put(alice, product_of(alice), body)
    assert response.status_code == 400
    assert response.json() == {"custom_fields": {"0": errors}}


@pytest.mark.parametrize(
    ("collection", "index", "changes", "field"),
    [
        ("option_groups", 1, {"name": "size"}, "name"),
        ("custom_fields", 1, {"key": "domain"}, "key"),
        ("subscription_plans", 1, {"name": "MONTHLY"}, "name"),
    ],
)
def test_duplicate_names_and_keys_in_a_collection_are_rejected(
    alice: Tenant, collection: str, index: int, changes: dict[str, Any], field: str
) -> None:
    body = with_item(collection, index, **changes)
    response = put(alice, product_of(alice), body)
    assert response.status_code == 400
    assert response.json() == {collection: {str(index): {field: [f"Duplicate {field}."]}}}


def test_duplicate_option_and_add_on_names_are_rejected(alice: Tenant) -> None:
    options = full_configuration()
    options["option_groups"][0]["options"][1]["name"] = "small"
    response = put(alice, product_of(alice), options)
    assert response.status_code == 400
    assert response.json() == {"option_groups": {"0": {"options": {"1": {"name": ["Duplicate name."]}}}}}
    add_ons = full_configuration()
    add_ons["add_ons"].append({"name": "Support", "price_delta": 1})
    response = put(alice, product_of(alice, "other"), add_ons)
    assert response.status_code == 400
    assert response.json() == {"add_ons": {"1": {"name": ["Duplicate name."]}}}


def test_a_repeated_id_is_rejected(alice: Tenant) -> None:
    product = configured(alice)
    support = AddOn.objects.get(product=product)
    body = {
        "add_ons": [
            {"id": support.pk, "name": "A", "price_delta": 1},
            {"id": support.pk, "name": "B", "price_delta": 2},
        ]
    }
    response = put(alice, product, body)
    assert response.status_code == 400
    assert response.json() == {"add_ons": {"1": {"id": ["Duplicate id."]}}}


def test_a_name_with_a_control_character_is_rejected(alice: Tenant) -> None:
    response = put(alice, product_of(alice), with_item("add_ons", 0, name="Sup\x1fport"))
    assert response.status_code == 400
    assert response.json()["add_ons"] == {"0": {"name": ["Control characters are not allowed."]}}


def test_one_bad_item_changes_nothing(alice: Tenant) -> None:
    product = configured(alice)
    before = snapshot(product)
    body = full_configuration()
    body["add_ons"] = [{"name": "New add-on", "price_delta": 5}]
    body["custom_fields"] = []
    body["option_groups"][1]["options"][0]["price_delta"] = 100_001
    response = put(alice, product, body)
    assert response.status_code == 400
    assert snapshot(product) == before


def test_a_foreign_id_fails_the_whole_request_after_nothing_was_written(alice: Tenant) -> None:
    product = configured(alice)
    other = product_of(alice, "other")
    assert put(alice, other, full_configuration()).status_code == 200
    foreign_group = OptionGroup.objects.filter(product=other).first()
    assert foreign_group is not None
    before = snapshot(product)
    body = full_configuration()
    body["add_ons"] = []  # would delete, if anything were written
    body["option_groups"][1]["id"] = foreign_group.pk
    response = put(alice, product, body)
    assert response.status_code == 400
    assert response.json() == {
        "option_groups": {"1": {"id": [f"{foreign_group.pk} is not an item of this product's option_groups."]}}
    }
    assert snapshot(product) == before


def test_an_option_id_of_another_group_is_rejected(alice: Tenant) -> None:
    product = configured(alice)
    size, extras = OptionGroup.objects.filter(product=product).order_by("position")
    gift_wrap = extras.options.get()
    body = full_configuration()
    body["option_groups"][0]["id"] = size.pk
    body["option_groups"][0]["options"][0]["id"] = gift_wrap.pk
    response = put(alice, product, body)
    assert response.status_code == 400
    assert response.json() == {
        "option_groups": {"0": {"options": {"0": {"id": [f"{gift_wrap.pk} is not an option of this group."]}}}}
    }


def test_items_with_their_id_are_kept_and_reordered_and_the_rest_replaced(alice: Tenant) -> None:
    product = configured(alice)
    size = OptionGroup.objects.get(product=product, name="Size")
    small, large = size.options.order_by("position")
    monthly = SubscriptionPlan.objects.get(product=product, name="Monthly")
    body = {
        "option_groups": [
            {
                "id": size.pk,
                "name": "Size",
                "selection": "single",
                # Swapping names: the unique constraint must not trip half way through.
                "options": [
                    {"id": large.pk, "name": "Small", "price_delta": 700},
                    {"id": small.pk, "name": "Large", "price_delta": 0},
                    {"name": "Medium", "price_delta": 250},
                ],
            }
        ],
        "subscription_plans": [{"id": monthly.pk, "name": "Monthly", "billing_cycle": "quarterly", "price_delta": 10}],
    }
    response = put(alice, product, body)
    assert response.status_code == 200, response.json()
    options = response.json()["configuration"]["option_groups"][0]["options"]
    assert [(o["id"], o["name"], o["price_delta"]) for o in options[:2]] == [
        (large.pk, "Small", 700),
        (small.pk, "Large", 0),
    ]
    assert options[2]["name"] == "Medium" and options[2]["id"] not in (small.pk, large.pk)
    assert list(OptionGroup.objects.filter(product=product)) == [size]
    assert SubscriptionPlan.objects.get(product=product).pk == monthly.pk
    assert SubscriptionPlan.objects.get(product=product).billing_cycle == "quarterly"


def test_put_deletes_the_collections_it_omits(alice: Tenant) -> None:
    product = configured(alice)
    response = put(alice, product, {"add_ons": [{"name": "Only this", "price_delta": 1}]})
    assert response.status_code == 200
    assert response.json()["configuration"] == {
        "option_groups": [],
        "add_ons": [
            {"id": AddOn.objects.get(product=product).pk, "name": "Only this", "description": "", "price_delta": 1}
        ],
        "custom_fields": [],
        "subscription_plans": [],
    }
    assert not Option.objects.filter(group__product=product).exists()


# --- custom_field_values_validate ------------------------------------------------------------------


@pytest.fixture
def fields_product(alice: Tenant) -> CatalogProduct:
    return configured(alice)


def test_valid_values_are_returned_cleaned(fields_product: CatalogProduct) -> None:
    cleaned = custom_field_values_validate(
        fields_product, {"domain": "  example.com ", "site": "https://example.com/a", "seats": "3"}
    )
    assert cleaned == {"domain": "example.com", "site": "https://example.com/a", "seats": 3}
    assert custom_field_values_validate(fields_product, {"domain": "x", "site": ""}) == {"domain": "x"}


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        ({}, {"domain": ["This field is required."]}),
        ({"domain": "   "}, {"domain": ["This field is required."]}),
        ({"domain": "x" * 21}, {"domain": ["Ensure this value has at most 20 characters."]}),
        ({"domain": 5}, {"domain": ["A string is required."]}),
        (
            {"domain": "x", "site": "ftp://example.com"},
            {"site": ["Enter a valid http or https URL of at most 2000 characters."]},
        ),
        (
            {"domain": "x", "site": "not a url"},
            {"site": ["Enter a valid http or https URL of at most 2000 characters."]},
        ),
        ({"domain": "x", "seats": 0}, {"seats": ["Ensure this value is greater than or equal to 1."]}),
        ({"domain": "x", "seats": 11}, {"seats": ["Ensure this value is less than or equal to 10."]}),
        ({"domain": "x", "seats": 2.5}, {"seats": ["A whole number is required."]}),
        ({"domain": "x", "seats": True}, {"seats": ["A whole number is required."]}),
        ({"domain": "x", "seats": "--3"}, {"seats": ["A whole number is required."]}),
        ({"domain": "x", "colour": "red"}, {"colour": ["Unknown custom field."]}),
    ],
)
def test_invalid_values_are_rejected_naming_the_key(
    fields_product: CatalogProduct, values: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    with pytest.raises(ValidationError) as caught:
        custom_field_values_validate(fields_product, values)
    assert caught.value.message_dict == errors


def test_number_bounds_are_inclusive(fields_product: CatalogProduct) -> None:
    assert custom_field_values_validate(fields_product, {"domain": "x", "seats": 1})["seats"] == 1
    assert custom_field_values_validate(fields_product, {"domain": "x", "seats": 10})["seats"] == 10


def test_values_that_are_not_an_object_are_rejected(fields_product: CatalogProduct) -> None:
    with pytest.raises(ValidationError):
        custom_field_values_validate(fields_product, ["domain"])  # type: ignore[arg-type]


def test_a_text_field_without_max_length_still_has_a_limit(alice: Tenant) -> None:
    product = product_of(alice)
    CustomFieldFactory.create(product=product, key="note", label="Note", field_type="text")
    assert custom_field_values_validate(product, {"note": "x" * 1000}) == {"note": "x" * 1000}
    with pytest.raises(ValidationError):
        custom_field_values_validate(product, {"note": "x" * 1001})
