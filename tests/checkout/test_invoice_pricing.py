"""The pricing of an invoice line, as arithmetic: no database, only ProductTerms snapshots.

The rule under test: a plan's decimal multiplier is applied to the unit amount (options and add-ons
included) and rounded once, half to even, to the minor unit; every other step is integer arithmetic.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.checkout.invoices.pricing import (
    AddOnTerms,
    GroupTerms,
    OptionTerms,
    PlanTerms,
    PricingError,
    ProductTerms,
    decimal_text,
    line_price,
    plan_apply,
    round_half_even,
)
from apps.checkout.models import AMOUNT_MAX


def terms(
    *,
    unit_amount: int | None = 1000,
    currency: str = "usd",
    active: bool = True,
    groups: tuple[GroupTerms, ...] = (),
    options: tuple[OptionTerms, ...] = (),
    add_ons: tuple[AddOnTerms, ...] = (),
    plans: tuple[PlanTerms, ...] = (),
) -> ProductTerms:
    return ProductTerms(
        id=7,
        slug="audit",
        name="Audit",
        active=active,
        unit_amount=unit_amount,
        currency=currency,
        feature_code="audit",
        purchase_duration_days=30,
        groups=groups,
        options={o.id: o for o in options},
        add_ons={a.id: a for a in add_ons},
        plans={p.id: p for p in plans},
    )


def multiplier_plan(factor: str, plan_id: int = 1) -> PlanTerms:
    return PlanTerms(id=plan_id, name=f"x{factor}", billing_cycle="monthly", multiplier=Decimal(factor), delta=None)


def delta_plan(delta: int, plan_id: int = 2) -> PlanTerms:
    return PlanTerms(id=plan_id, name=f"{delta:+d}", billing_cycle="annual", multiplier=None, delta=delta)


SIZE = GroupTerms(id=1, name="Size", single=True, required=True)
EXTRAS = GroupTerms(id=2, name="Extras", single=False, required=False)
SMALL = OptionTerms(id=11, name="Small", group_id=1, group_name="Size", delta=0)
LARGE = OptionTerms(id=12, name="Large", group_id=1, group_name="Size", delta=500)
GIFT = OptionTerms(id=21, name="Gift wrap", group_id=2, group_name="Extras", delta=150)
CARD = OptionTerms(id=22, name="Card", group_id=2, group_name="Extras", delta=75)
SUPPORT = AddOnTerms(id=31, name="Support", delta=900)
CONFIGURED = terms(
    unit_amount=1000,
    groups=(SIZE, EXTRAS),
    options=(SMALL, LARGE, GIFT, CARD),
    add_ons=(SUPPORT,),
    plans=(multiplier_plan("0.9"), delta_plan(-200)),
)


# --- the one rounding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "factor", "exact", "unit"),
    [
        (1005, "0.5", "502.5", 502),  # half: down to the even neighbour
        (1015, "0.5", "507.5", 508),  # half: up to the even neighbour
        (1, "0.5", "0.5", 0),
        (3, "0.5", "1.5", 2),
        (1007, "0.5", "503.5", 504),
        (1001, "0.5", "500.5", 500),
        (1003, "0.25", "250.75", 251),  # not a half: nearest
        (1001, "0.25", "250.25", 250),
        (1450, "0.9", "1305", 1305),  # exact: no rounding needed
        (333, "0.3333", "110.9889", 111),
        (99_999_999, "1", "99999999", 99_999_999),
    ],
)
def test_a_multiplier_is_rounded_once_half_to_even(before: int, factor: str, exact: str, unit: int) -> None:
    rounded, product = plan_apply(before, multiplier=Decimal(factor), delta=None)
    assert rounded == unit
    assert product is not None and decimal_text(product) == exact


def test_round_half_even_goes_to_the_even_neighbour_either_way() -> None:
    assert [round_half_even(Decimal(v)) for v in ("0.5", "1.5", "2.5", "3.5", "-0.5", "-1.5", "2.4999", "2.5001")] == [
        0,
        2,
        2,
        4,
        0,
        -2,
        2,
        3,
    ]


def test_the_multiplier_is_not_rounded_before_it_is_applied() -> None:
    # 30015 x 0.3333 = 10003.9995 -> 10004; a factor rounded first (0.33) would give 9904.95 -> 9905.
    assert plan_apply(30015, multiplier=Decimal("0.3333"), delta=None) == (10004, Decimal("10003.9995"))


def test_a_delta_plan_adds_its_delta_and_rounds_nothing() -> None:
    assert plan_apply(1450, multiplier=None, delta=-200) == (1250, None)
    assert plan_apply(1450, multiplier=None, delta=0) == (1450, None)


# --- a line ---------------------------------------------------------------------------------------


def test_a_line_adds_options_and_add_ons_then_applies_the_multiplier_to_the_whole_unit() -> None:
    line = line_price(
        product=CONFIGURED,
        currency="usd",
        option_ids=[12, 21, 22],  # Large +500 (single group), Gift wrap +150 and Card +75 (multiple group)
        add_on_ids=[31],  # Support +900
        plan_id=1,  # x 0.9
        quantity=2,
    )
    # 1000 + 500 + 150 + 75 + 900 = 2625; x 0.9 = 2362.5 -> 2362 (even); x 2 = 4724.
    assert (line.base_amount, line.before_plan, line.unit_amount, line.line_total) == (1000, 2625, 2362, 4724)
    assert line.plan_exact == Decimal("2362.5")
    assert line.breakdown == {
        "currency": "usd",
        "base": 1000,
        "options": [
            {"id": 12, "name": "Large", "group_id": 1, "group": "Size", "delta": 500},
            {"id": 21, "name": "Gift wrap", "group_id": 2, "group": "Extras", "delta": 150},
            {"id": 22, "name": "Card", "group_id": 2, "group": "Extras", "delta": 75},
        ],
        "add_ons": [{"id": 31, "name": "Support", "delta": 900}],
        "before_plan": 2625,
        "plan": {
            "id": 1,
            "name": "x0.9",
            "billing_cycle": "monthly",
            "multiplier": "0.9",
            "delta": None,
            "exact": "2362.5",
            "rounding": "half_even",
        },
        "unit_amount": 2362,
        "quantity": 2,
        "line_total": 4724,
    }
    assert line.plan == {"id": 1, "name": "x0.9", "billing_cycle": "monthly", "multiplier": "0.9", "delta": None}
    assert (line.feature_code, line.purchase_duration_days) == ("audit", 30)


def test_the_half_even_boundary_in_a_line_rounds_up_when_the_neighbour_above_is_even() -> None:
    # 1000 + 0 (Small) + 15 = 1015; x 0.5 = 507.5 -> 508.
    product = terms(
        unit_amount=1000,
        groups=(SIZE,),
        options=(SMALL,),
        add_ons=(AddOnTerms(id=31, name="Tiny", delta=15),),
        plans=(multiplier_plan("0.5"),),
    )
    line = line_price(product=product, currency="usd", option_ids=[11], add_on_ids=[31], plan_id=1)
    assert (line.before_plan, line.unit_amount, line.breakdown["plan"]["exact"]) == (1015, 508, "507.5")


def test_the_half_even_boundary_in_a_line_rounds_down_when_the_neighbour_below_is_even() -> None:
    product = terms(unit_amount=1005, plans=(multiplier_plan("0.5"),))
    line = line_price(product=product, currency="usd", plan_id=1, quantity=3)
    assert (line.unit_amount, line.line_total, line.breakdown["plan"]["exact"]) == (502, 1506, "502.5")


def test_a_delta_plan_line_has_no_rounding_step() -> None:
    line = line_price(product=CONFIGURED, currency="usd", option_ids=[11], plan_id=2, quantity=3)
    assert (line.before_plan, line.unit_amount, line.line_total) == (1000, 800, 2400)
    assert line.breakdown["plan"] == {
        "id": 2,
        "name": "-200",
        "billing_cycle": "annual",
        "multiplier": None,
        "delta": -200,
    }


def test_without_a_plan_the_unit_is_the_sum_and_the_quantity_multiplies_it() -> None:
    line = line_price(product=CONFIGURED, currency="usd", option_ids=[12], quantity=10_000)
    assert (line.unit_amount, line.line_total, line.plan, line.breakdown["plan"]) == (1500, 15_000_000, None, None)


def test_a_large_multiplier_is_exact() -> None:
    product = terms(unit_amount=999_999, plans=(multiplier_plan("99.9999"),))
    line = line_price(product=product, currency="usd", plan_id=1)
    # 999999 x 99.9999 = 99999800.0001 -> 99999800, just inside 99999999.
    assert line.unit_amount == 99_999_800 and line.breakdown["plan"]["exact"] == "99999800.0001"


# --- refusals, each naming its field ---------------------------------------------------------------


def errors_of(**kwargs: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"product": CONFIGURED, "currency": "usd", "option_ids": [11]}
    with pytest.raises(PricingError) as caught:
        line_price(**(defaults | kwargs))
    return caught.value.errors


def test_an_option_of_another_product_is_named_by_its_index() -> None:
    assert errors_of(option_ids=[11, 99]) == {"option_ids": {1: ["Option 99 is not an option of product 7 ('audit')."]}}


def test_two_options_of_a_single_choice_group_are_refused_at_the_second() -> None:
    assert errors_of(option_ids=[11, 21, 12]) == {
        "option_ids": {2: ["Group 'Size' takes a single option: 11 ('Small') and 12 ('Large') were both chosen."]}
    }


def test_several_options_of_a_multiple_choice_group_are_fine_but_not_the_same_one_twice() -> None:
    assert line_price(product=CONFIGURED, currency="usd", option_ids=[11, 21, 22]).before_plan == 1225
    assert errors_of(option_ids=[11, 21, 21]) == {"option_ids": {2: ["Option 21 is chosen twice."]}}


def test_a_required_group_without_a_choice_is_named() -> None:
    assert errors_of(option_ids=[21]) == {
        "option_ids": ["Group 'Size' is required: choose one of its options (11, 12)."]
    }


def test_add_ons_and_plans_must_be_the_products() -> None:
    assert errors_of(add_on_ids=[31, 5], plan_id=9) == {
        "add_on_ids": {1: ["Add-on 5 is not an add-on of product 7 ('audit')."]},
        "plan_id": ["Plan 9 is not a plan of product 7 ('audit')."],
    }


def test_a_currency_mismatch_is_named_on_the_product() -> None:
    assert errors_of(currency="eur") == {
        "product_id": ["Currency mismatch: product 7 ('audit') is priced in usd, this invoice is in eur."]
    }


def test_an_inactive_product_or_one_without_a_price_is_refused() -> None:
    with pytest.raises(PricingError) as inactive:
        line_price(product=terms(active=False), currency="usd")
    assert inactive.value.errors == {"product_id": ["Product 7 ('audit') is not active."]}
    with pytest.raises(PricingError) as unpriced:
        line_price(product=terms(unit_amount=None, currency=""), currency="usd")
    assert "has no unit_amount" in unpriced.value.errors["product_id"][0]


@pytest.mark.parametrize(
    ("product", "kwargs", "field"),
    [
        (
            terms(unit_amount=100, add_ons=(AddOnTerms(id=1, name="Discount", delta=-101),)),
            {"add_on_ids": [1]},
            "unit_amount",
        ),
        (terms(unit_amount=1000, plans=(delta_plan(-1001),)), {"plan_id": 2}, "unit_amount"),
        (terms(unit_amount=99_999_999, plans=(multiplier_plan("1.0001"),)), {"plan_id": 1}, "unit_amount"),
        (
            terms(unit_amount=99_999_999, add_ons=(AddOnTerms(id=1, name="More", delta=1),)),
            {"add_on_ids": [1]},
            "unit_amount",
        ),
        (terms(unit_amount=10_000), {"quantity": 10_000}, "quantity"),  # 100,000,000 > 99,999,999
    ],
)
def test_an_amount_out_of_range_is_refused_naming_it(product: ProductTerms, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(PricingError) as caught:
        line_price(product=product, currency="usd", **kwargs)
    assert list(caught.value.errors) == [field]
    assert caught.value.errors[field][0].startswith("Out of range:")


def test_the_bounds_themselves_are_in_range() -> None:
    free = terms(unit_amount=100, add_ons=(AddOnTerms(id=1, name="Discount", delta=-100),))
    assert line_price(product=free, currency="usd", add_on_ids=[1]).unit_amount == 0
    assert line_price(product=terms(unit_amount=AMOUNT_MAX), currency="usd").line_total == AMOUNT_MAX


@pytest.mark.parametrize("quantity", [0, 10_001])
def test_a_quantity_outside_1_to_10000_is_refused(quantity: int) -> None:
    assert errors_of(quantity=quantity) == {"quantity": ["Ensure this value is from 1 to 10000."]}
