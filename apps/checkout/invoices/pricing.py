"""Pricing a configured product into an invoice line: integer arithmetic in minor units.

    base        = the product's unit_amount
    before_plan = base + Σ chosen options' price_delta + Σ chosen add-ons' price_delta
    unit_amount = round_half_even(before_plan x plan multiplier)   (a multiplier plan), or
                  before_plan + plan price_delta                    (a delta plan), or
                  before_plan                                       (no plan)
    line_total  = unit_amount x quantity

A plan's multiplier is a decimal (0.9, 10.0); the product is computed exactly with Decimal and
rounded once, half to even, to the minor unit: 1005 x 0.5 = 502.5 → 502, 1015 x 0.5 = 507.5 → 508.
Nothing else rounds: every other step adds or multiplies integers.

`line_price` is pure: it takes `ProductTerms`, a snapshot of the product and its configuration,
and touches no database. `lines_price` loads the products of every line of an invoice with one
query set (the products and their configuration prefetched), validates every line, and reports
every problem at once, keyed by where the caller sent it: `{"lines": {0: {"option_ids": {1: [...]}}}}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from django.core.exceptions import ValidationError

from apps.catalog.configuration import CONFIGURATION_PREFETCH, custom_field_values_validate
from apps.catalog.models import CatalogProduct, OptionGroup
from apps.checkout.models import AMOUNT_MAX
from apps.common.exceptions import NestedValidationError, validation_detail

QUANTITY_MAX = 10_000
ROUNDING = "half_even"
# Exact for every product we can meet (8-digit amounts times factors of at most 8 digits need 16),
# so that the quantize below is the one and only rounding.
_EXACT = Context(prec=40, rounding=ROUND_HALF_EVEN)
_MINOR_UNIT = Decimal(1)


@dataclass(frozen=True)
class GroupTerms:
    id: int
    name: str
    single: bool
    required: bool


@dataclass(frozen=True)
class OptionTerms:
    id: int
    name: str
    group_id: int
    group_name: str
    delta: int


@dataclass(frozen=True)
class AddOnTerms:
    id: int
    name: str
    delta: int


@dataclass(frozen=True)
class PlanTerms:
    id: int
    name: str
    billing_cycle: str
    multiplier: Decimal | None
    delta: int | None


@dataclass(frozen=True)
class ProductTerms:
    """What pricing needs of a product, read once from its prefetched configuration."""

    id: int
    slug: str
    name: str
    active: bool
    unit_amount: int | None
    currency: str
    feature_code: str
    purchase_duration_days: int | None
    groups: tuple[GroupTerms, ...]
    options: Mapping[int, OptionTerms]
    add_ons: Mapping[int, AddOnTerms]
    plans: Mapping[int, PlanTerms]


@dataclass(frozen=True)
class PricedLine:
    """One priced line: every component, and `breakdown`, the arithmetic as stored for finance."""

    product_id: int
    product_name: str
    quantity: int
    base_amount: int
    options: list[dict[str, Any]]
    add_ons: list[dict[str, Any]]
    before_plan: int
    plan: dict[str, Any] | None
    plan_exact: Decimal | None  # before_plan x multiplier before its rounding; None without a multiplier
    unit_amount: int
    line_total: int
    feature_code: str
    purchase_duration_days: int | None
    custom_fields: dict[str, Any]
    breakdown: dict[str, Any]


class PricingError(Exception):
    """The problems of one line, keyed by the line's own field names (list items by index)."""

    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__(str(errors))


def decimal_text(value: Decimal) -> str:
    """A decimal as plain digits without trailing zeros: 0.9000 → "0.9", 10.0000 → "10" (never 1E+1)."""
    return format(value.normalize(_EXACT), "f")


def round_half_even(value: Decimal) -> int:
    """To the minor unit, half to even (banker's rounding): 502.5 → 502, 507.5 → 508, -2.5 → -2."""
    return int(value.quantize(_MINOR_UNIT, rounding=ROUND_HALF_EVEN, context=_EXACT))


def plan_apply(before_plan: int, *, multiplier: Decimal | None, delta: int | None) -> tuple[int, Decimal | None]:
    """The unit amount after a plan, and the exact product when the plan is a multiplier.

    A multiplier is applied to the whole unit amount (options and add-ons included) and rounded once.
    """
    if multiplier is not None:
        exact = _EXACT.multiply(Decimal(before_plan), multiplier.normalize(_EXACT))
        return round_half_even(exact), exact
    return before_plan + (delta or 0), None


def product_terms(product: CatalogProduct) -> ProductTerms:
    """The snapshot of a product whose configuration was prefetched (CONFIGURATION_PREFETCH): the
    `.all()` calls below read the prefetch cache, so building it costs no query."""
    groups: list[GroupTerms] = []
    options: dict[int, OptionTerms] = {}
    for group in product.option_groups.all():
        groups.append(
            GroupTerms(
                id=group.pk,
                name=group.name,
                single=group.selection == OptionGroup.Selection.SINGLE,
                required=group.required,
            )
        )
        for option in group.options.all():
            options[option.pk] = OptionTerms(
                id=option.pk, name=option.name, group_id=group.pk, group_name=group.name, delta=option.price_delta
            )
    return ProductTerms(
        id=product.pk,
        slug=product.slug,
        name=product.name,
        active=product.active,
        unit_amount=product.unit_amount,
        currency=product.currency,
        feature_code=product.feature_code,
        purchase_duration_days=product.purchase_duration_days,
        groups=tuple(groups),
        options=options,
        add_ons={a.pk: AddOnTerms(id=a.pk, name=a.name, delta=a.price_delta) for a in product.add_ons.all()},
        plans={
            p.pk: PlanTerms(
                id=p.pk,
                name=p.name,
                billing_cycle=p.billing_cycle,
                multiplier=p.price_multiplier,
                delta=p.price_delta,
            )
            for p in product.subscription_plans.all()
        },
    )


def _product_errors(product: ProductTerms, currency: str) -> list[str]:
    if not product.active:
        return [f"Product {product.id} ('{product.slug}') is not active."]
    if product.unit_amount is None:
        return [f"Product {product.id} ('{product.slug}') has no unit_amount: give it a base price first."]
    if product.currency != currency:
        return [
            f"Currency mismatch: product {product.id} ('{product.slug}') is priced in {product.currency}, "
            f"this invoice is in {currency}."
        ]
    return []


def _chosen_options(product: ProductTerms, option_ids: Sequence[int]) -> tuple[list[OptionTerms], Any]:
    """The chosen options, and their errors (None when there are none).

    Errors of single items are keyed by the item's index. Only when every item is valid are the
    groups checked as a whole (a required group left without a choice), since a wrong id may well
    have been meant for that group; that error names the list itself.
    """
    chosen: list[OptionTerms] = []
    item_errors: dict[int, list[str]] = {}
    picked_in_group: dict[int, OptionTerms] = {}
    single = {group.id for group in product.groups if group.single}
    for index, option_id in enumerate(option_ids):
        option = product.options.get(option_id)
        if option is None:
            item_errors[index] = [f"Option {option_id} is not an option of product {product.id} ('{product.slug}')."]
        elif any(earlier.id == option_id for earlier in chosen):
            item_errors[index] = [f"Option {option_id} is chosen twice."]
        elif option.group_id in single and option.group_id in picked_in_group:
            first = picked_in_group[option.group_id]
            item_errors[index] = [
                f"Group '{option.group_name}' takes a single option: {first.id} ('{first.name}') and "
                f"{option.id} ('{option.name}') were both chosen."
            ]
        else:
            chosen.append(option)
            picked_in_group.setdefault(option.group_id, option)
    if item_errors:
        return chosen, item_errors
    missing = [
        f"Group '{group.name}' is required: choose one of its options "
        f"({', '.join(str(o.id) for o in product.options.values() if o.group_id == group.id)})."
        for group in product.groups
        if group.required and group.id not in picked_in_group
    ]
    return chosen, (missing or None)


def _chosen_add_ons(product: ProductTerms, add_on_ids: Sequence[int]) -> tuple[list[AddOnTerms], Any]:
    chosen: list[AddOnTerms] = []
    errors: dict[int, list[str]] = {}
    for index, add_on_id in enumerate(add_on_ids):
        add_on = product.add_ons.get(add_on_id)
        if add_on is None:
            errors[index] = [f"Add-on {add_on_id} is not an add-on of product {product.id} ('{product.slug}')."]
        elif add_on in chosen:
            errors[index] = [f"Add-on {add_on_id} is chosen twice."]
        else:
            chosen.append(add_on)
    return chosen, (errors or None)


def line_price(
    *,
    product: ProductTerms,
    currency: str,
    option_ids: Sequence[int] = (),
    add_on_ids: Sequence[int] = (),
    plan_id: int | None = None,
    quantity: int = 1,
    custom_fields: Mapping[str, Any] | None = None,
) -> PricedLine:
    """Prices one line; raises PricingError naming every problem of the line.

    `custom_fields` are stored as given: the caller validated them against the product's definitions
    (custom_field_values_validate needs the product's rows, which this pure function does not).
    """
    errors: dict[str, Any] = {}
    if product_problems := _product_errors(product, currency):
        errors["product_id"] = product_problems
    options, option_errors = _chosen_options(product, option_ids)
    if option_errors:
        errors["option_ids"] = option_errors
    add_ons, add_on_errors = _chosen_add_ons(product, add_on_ids)
    if add_on_errors:
        errors["add_on_ids"] = add_on_errors
    plan = product.plans.get(plan_id) if plan_id is not None else None
    if plan_id is not None and plan is None:
        errors["plan_id"] = [f"Plan {plan_id} is not a plan of product {product.id} ('{product.slug}')."]
    if not 1 <= quantity <= QUANTITY_MAX:
        errors["quantity"] = [f"Ensure this value is from 1 to {QUANTITY_MAX}."]
    if errors:
        raise PricingError(errors)

    assert product.unit_amount is not None  # _product_errors refused a product without one
    base = product.unit_amount
    before_plan = base + sum(o.delta for o in options) + sum(a.delta for a in add_ons)
    if plan is not None:
        unit, exact = plan_apply(before_plan, multiplier=plan.multiplier, delta=plan.delta)
    else:
        unit, exact = before_plan, None
    if not 0 <= unit <= AMOUNT_MAX:
        raise PricingError(
            {
                "unit_amount": [
                    f"Out of range: the unit amount after options, add-ons and plan is {unit}; "
                    f"it must be from 0 to {AMOUNT_MAX} (minor units)."
                ]
            }
        )
    line_total = unit * quantity
    if line_total > AMOUNT_MAX:
        raise PricingError(
            {"quantity": [f"Out of range: the line total {unit} x {quantity} = {line_total} exceeds {AMOUNT_MAX}."]}
        )

    option_rows = [
        {"id": o.id, "name": o.name, "group_id": o.group_id, "group": o.group_name, "delta": o.delta} for o in options
    ]
    add_on_rows = [{"id": a.id, "name": a.name, "delta": a.delta} for a in add_ons]
    plan_row = _plan_row(plan)
    plan_step: dict[str, Any] | None = None
    if plan is not None and plan_row is not None:
        plan_step = dict(plan_row)
        if exact is not None:
            plan_step |= {"exact": decimal_text(exact), "rounding": ROUNDING}
    breakdown = {
        "currency": currency,
        "base": base,
        "options": option_rows,
        "add_ons": add_on_rows,
        "before_plan": before_plan,
        "plan": plan_step,
        "unit_amount": unit,
        "quantity": quantity,
        "line_total": line_total,
    }
    return PricedLine(
        product_id=product.id,
        product_name=product.name,
        quantity=quantity,
        base_amount=base,
        options=option_rows,
        add_ons=add_on_rows,
        before_plan=before_plan,
        plan=plan_row,
        plan_exact=exact,
        unit_amount=unit,
        line_total=line_total,
        feature_code=product.feature_code,
        purchase_duration_days=product.purchase_duration_days,
        custom_fields=dict(custom_fields or {}),
        breakdown=breakdown,
    )


def _plan_row(plan: PlanTerms | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "id": plan.id,
        "name": plan.name,
        "billing_cycle": plan.billing_cycle,
        # A decimal string, never a float: "0.9", not 0.9000000000000000222.
        "multiplier": decimal_text(plan.multiplier) if plan.multiplier is not None else None,
        "delta": plan.delta,
    }


def products_load(*, project_id: int, product_ids: Sequence[int]) -> dict[int, CatalogProduct]:
    """The project's products among `product_ids`, with their configuration: one query set (a
    query for the products and one per prefetched collection), however many lines and options."""
    rows = CatalogProduct.objects.filter(project_id=project_id, pk__in=set(product_ids)).prefetch_related(
        *CONFIGURATION_PREFETCH
    )
    return {product.pk: product for product in rows}


def lines_price(*, project_id: int, currency: str, lines: Sequence[Mapping[str, Any]]) -> list[PricedLine]:
    """Every line of an invoice priced, or a NestedValidationError naming every problem of every line.

    A line is `{"product_id", "option_ids"?, "add_on_ids"?, "plan_id"?, "quantity"?, "custom_fields"?}`
    (validated shapes). Another project's product is "not a product of this project", as a missing
    one is: its existence is not revealed.
    """
    products = products_load(project_id=project_id, product_ids=[line["product_id"] for line in lines])
    terms = {product_id: product_terms(product) for product_id, product in products.items()}
    priced: list[PricedLine] = []
    errors: dict[int, dict[str, Any]] = {}
    for index, line in enumerate(lines):
        product = products.get(line["product_id"])
        if product is None:
            errors[index] = {"product_id": [f"Product {line['product_id']} is not a product of this project."]}
            continue
        line_errors: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        try:
            custom = custom_field_values_validate(product, line.get("custom_fields") or {})
        except ValidationError as exc:
            detail = validation_detail(exc)
            line_errors["custom_fields"] = detail
        try:
            priced_line = line_price(
                product=terms[product.pk],
                currency=currency,
                option_ids=line.get("option_ids") or (),
                add_on_ids=line.get("add_on_ids") or (),
                plan_id=line.get("plan_id"),
                quantity=line.get("quantity", 1),
                custom_fields=custom,
            )
        except PricingError as exc:
            line_errors = exc.errors | line_errors
        else:
            if not line_errors:
                priced.append(priced_line)
        if line_errors:
            errors[index] = line_errors
    if errors:
        raise NestedValidationError({"lines": errors})
    total = sum(line.line_total for line in priced)
    if total > AMOUNT_MAX:
        raise NestedValidationError(
            {"lines": [f"Out of range: the invoice total {total} exceeds {AMOUNT_MAX} (minor units)."]}
        )
    return priced
