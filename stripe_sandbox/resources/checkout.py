"""Checkout sessions and billing portal sessions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import checkout_lifecycle as lifecycle
from ..api import ApiRequest, matching, route
from ..errors import invalid
from ..params import get_bool, get_dict, get_int, get_list, get_str, merge_metadata
from ..render import list_page, paginate
from ..sandbox import Sandbox
from ..shapes import catalog as catalog_shapes
from ..shapes import checkout as shapes
from ..store import JsonObject
from .catalog import create_price, get_currency

INTERVALS = ("day", "week", "month", "year")
TAX_BEHAVIORS = ("exclusive", "inclusive", "unspecified")
# Stripe's minimum charge, for the currencies the service bills in: a payment-mode session must
# add up to at least this (other currencies are not checked).
MINIMUM_CHARGE = {"usd": (50, "$0.50"), "eur": (50, "€0.50"), "gbp": (30, "£0.30")}


@dataclass
class _Line:
    """A line item read and checked, before anything is created for it."""

    quantity: int
    price: JsonObject | None  # an existing price...
    price_data: dict[str, Any] | None  # ...or create_price's params for an inline one
    currency: str
    unit_amount: int
    recurring: bool


def _read_line(sb: Sandbox, raw: Any, index: int) -> _Line:
    at = f"line_items[{index}]"
    if not isinstance(raw, dict):
        raise invalid(f"Invalid object: {at}", at)
    quantity = get_int(raw, "quantity", minimum=1, param=f"{at}[quantity]") or 1
    price_id = get_str(raw, "price", param=f"{at}[price]")
    has_price_data = raw.get("price_data") not in (None, "")
    if price_id is not None and has_price_data:
        raise invalid("You may only specify one of these parameters: price, price_data.", at)
    if price_id is not None:
        price = sb.store.require(price_id, "price", f"{at}[price]")
        if not price.get("active"):
            raise invalid(
                f"The price specified ({price_id}) is inactive. This field only accepts active prices.", f"{at}[price]"
            )
        return _Line(quantity, price, None, price["currency"], price["unit_amount"], price["recurring"] is not None)
    if not has_price_data:
        raise invalid("You must specify either price or price_data.", at, code="parameter_missing")
    data = _read_price_data(sb, raw, f"{at}[price_data]")
    return _Line(quantity, None, data, data["currency"], int(data["unit_amount"]), "recurring" in data)


def _read_price_data(sb: Sandbox, line: dict[str, Any], at: str) -> dict[str, Any]:
    """Check ``price_data`` whole, so that a bad line creates no product or price for the others."""
    data = get_dict(line, "price_data", param=at)
    params: dict[str, Any] = {"currency": get_currency(data, param=f"{at}[currency]"), "active": "false"}
    unit_amount = get_int(data, "unit_amount", required=True, param=f"{at}[unit_amount]")
    assert unit_amount is not None
    if unit_amount < 0:
        raise invalid("Invalid non-negative integer", f"{at}[unit_amount]")
    params["unit_amount"] = str(unit_amount)
    product_id = get_str(data, "product", param=f"{at}[product]")
    product_data = get_dict(data, "product_data", param=f"{at}[product_data]")
    if product_id is not None and product_data:
        raise invalid("You may only specify one of these parameters: product, product_data.", at)
    if product_id is not None:
        sb.store.require(product_id, "product", f"{at}[product]")
        params["product"] = product_id
    elif product_data:
        get_str(product_data, "name", required=True, param=f"{at}[product_data][name]")
        get_str(product_data, "description", param=f"{at}[product_data][description]")
        merge_metadata({}, product_data.get("metadata", {}), f"{at}[product_data][metadata]")
        params["product_data"] = product_data
    else:
        raise invalid(
            "You must specify either product or product_data.", f"{at}[product_data]", code="parameter_missing"
        )
    tax_behavior = get_str(data, "tax_behavior", param=f"{at}[tax_behavior]")
    if tax_behavior is not None:
        if tax_behavior not in TAX_BEHAVIORS:
            raise invalid(f"Invalid tax_behavior: must be one of {', '.join(TAX_BEHAVIORS)}", f"{at}[tax_behavior]")
        params["tax_behavior"] = tax_behavior
    recurring = get_dict(data, "recurring", param=f"{at}[recurring]")
    if recurring:
        if get_str(recurring, "interval", param=f"{at}[recurring][interval]") not in INTERVALS:
            raise invalid(
                "Invalid recurring[interval]: must be one of day, week, month, or year", f"{at}[recurring][interval]"
            )
        get_int(recurring, "interval_count", minimum=1, param=f"{at}[recurring][interval_count]")
        params["recurring"] = recurring
    return params


def _read_expires_at(params: dict[str, Any], now: int) -> int:
    expires_at = get_int(params, "expires_at")
    if expires_at is None:
        return now + lifecycle.DEFAULT_EXPIRY_S
    if expires_at < now + lifecycle.MIN_EXPIRY_S:
        raise invalid(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.", "expires_at"
        )
    if expires_at > now + lifecycle.MAX_EXPIRY_S:
        raise invalid(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.", "expires_at"
        )
    return expires_at


def _read_after_expiration(params: dict[str, Any]) -> JsonObject | None:
    after = get_dict(params, "after_expiration")
    if not after:
        return None
    recovery = get_dict(after, "recovery", param="after_expiration[recovery]")
    if not recovery:
        return {"recovery": None}
    at = "after_expiration[recovery]"
    enabled = get_bool(recovery, "enabled", param=f"{at}[enabled]")
    if enabled is None:
        raise invalid(f"Missing required param: {at}[enabled].", f"{at}[enabled]", code="parameter_missing")
    promotion_codes = get_bool(recovery, "allow_promotion_codes", param=f"{at}[allow_promotion_codes]")
    return shapes.after_expiration(enabled, bool(promotion_codes))


def _check_minimum(mode: str, currency: str, total: int) -> None:
    minimum = MINIMUM_CHARGE.get(currency)
    if mode == "payment" and minimum is not None and total < minimum[0]:
        raise invalid(f"The Checkout Session's total amount due must add up to at least {minimum[1]} {currency}")


@route("POST", "/v1/checkout/sessions")
def create_session(sb: Sandbox, req: ApiRequest) -> JsonObject:
    params = req.params
    store = sb.store
    mode = get_str(params, "mode", required=True)
    assert mode is not None
    if mode not in ("payment", "subscription"):
        raise invalid("The sandbox supports mode=payment and mode=subscription.", "mode")
    ui_mode = get_str(params, "ui_mode") or "hosted_page"
    if ui_mode != "hosted_page":
        # Embedded and custom (Elements) checkouts need Stripe.js; only the hosted page exists here.
        raise invalid("The sandbox supports ui_mode=hosted_page only.", "ui_mode")
    success_url = get_str(params, "success_url", required=True)
    raw_items = get_list(params, "line_items")
    if not raw_items:
        raise invalid("Missing required param: line_items.", "line_items", code="parameter_missing")
    # Every check before anything is created: a refused request leaves no inline product or price.
    lines = [_read_line(sb, raw, i) for i, raw in enumerate(raw_items)]
    if mode == "subscription" and not any(line.recurring for line in lines):
        raise invalid("You must provide at least one recurring price in `subscription` mode.", "line_items")
    if mode == "payment" and any(line.recurring for line in lines):
        raise invalid("You can only use recurring prices in `subscription` mode.", "line_items")
    if len({line.currency for line in lines}) > 1:
        raise invalid("All line items must use the same currency.", "line_items")
    customer_id = get_str(params, "customer")
    if customer_id is not None:
        store.require(customer_id, "customer", "customer")
    now = store.now()
    expires_at = _read_expires_at(params, now)
    after_expiration = _read_after_expiration(params)
    metadata = merge_metadata({}, params.get("metadata", {}))
    subscription_data = get_dict(params, "subscription_data")
    pi_data = get_dict(params, "payment_intent_data")
    trial_param = "subscription_data[trial_period_days]"
    trial_days = get_int(subscription_data, "trial_period_days", minimum=1, param=trial_param)
    currency = lines[0].currency
    _check_minimum(mode, currency, sum(line.unit_amount * line.quantity for line in lines))
    # Inline prices are real (inactive) Price objects, as at Stripe, made only now.
    prices = [line.price or create_price(sb, line.price_data or {}) for line in lines]
    items = [_item(sb, price, line.quantity) for price, line in zip(prices, lines, strict=True)]
    subtotal = sum(item["amount_subtotal"] for item in items)
    total = sum(item["amount_total"] for item in items)
    session_id = lifecycle.new_session_id(store)
    session = shapes.checkout_session(session_id, now, mode, expires_at, lifecycle.hosted_url(sb, session_id))
    session.update(
        success_url=success_url,
        cancel_url=get_str(params, "cancel_url"),
        client_reference_id=get_str(params, "client_reference_id"),
        customer=customer_id,
        customer_email=get_str(params, "customer_email"),
        metadata=metadata,
        currency=currency,
        amount_subtotal=subtotal,
        amount_total=total,
        locale=get_str(params, "locale"),
        after_expiration=after_expiration,
    )
    if mode == "payment" and customer_id is None:
        session["customer_creation"] = get_str(params, "customer_creation") or "if_required"
    meta = store.meta(session_id)
    meta["line_items"] = items
    meta["subscription_metadata"] = merge_metadata({}, subscription_data.get("metadata", {}))
    meta["trial_days"] = trial_days
    meta["subscription_description"] = get_str(subscription_data, "description")
    meta["payment_intent_metadata"] = merge_metadata({}, pi_data.get("metadata", {}))
    meta["payment_intent_description"] = get_str(pi_data, "description")
    return sb.create(session)


def _item(sb: Sandbox, price: JsonObject, quantity: int) -> JsonObject:
    product = sb.store.get(price["product"], "product")
    description = product["name"] if product else price["id"]
    return shapes.checkout_item(sb.store.new_id("li"), price, quantity, description)


@route("GET", "/v1/checkout/sessions/{id}")
def get_session(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "checkout.session")


@route("POST", "/v1/checkout/sessions/{id}")
def update_session(sb: Sandbox, req: ApiRequest) -> JsonObject:
    session = sb.store.require(req.arg("id"), "checkout.session")
    if "metadata" in req.params:
        sb.update(session, {"metadata": merge_metadata(session["metadata"], req.params["metadata"])})
    return session


@route("POST", "/v1/checkout/sessions/{id}/expire")
def expire_session(sb: Sandbox, req: ApiRequest) -> JsonObject:
    session = sb.store.require(req.arg("id"), "checkout.session")
    lifecycle.expire_if_due(sb, session)
    if session["status"] != "open":
        raise invalid('Only Checkout Sessions with a status in ["open"] can be expired.')
    lifecycle.expire(sb, session)
    return session


@route("GET", "/v1/checkout/sessions")
def list_sessions(sb: Sandbox, req: ApiRequest) -> JsonObject:
    where = matching(req.params, ["customer", "status", "payment_intent", "subscription"])
    return list_page(sb.store, "checkout.session", req.params, "/v1/checkout/sessions", where)


@route("GET", "/v1/checkout/sessions/{id}/line_items")
def list_session_line_items(sb: Sandbox, req: ApiRequest) -> JsonObject:
    session = sb.store.require(req.arg("id"), "checkout.session")
    items = list(sb.store.meta(session["id"]).get("line_items", []))
    return paginate(items, req.params, f"/v1/checkout/sessions/{session['id']}/line_items")


@route("POST", "/v1/billing_portal/sessions")
def create_portal_session(sb: Sandbox, req: ApiRequest) -> JsonObject:
    customer_id = get_str(req.params, "customer", required=True)
    assert customer_id is not None
    sb.store.require(customer_id, "customer", "customer")
    store = sb.store
    session_id = store.new_id("bps")
    session = catalog_shapes.portal_session(
        session_id, store.now(), customer_id, get_str(req.params, "return_url"), f"{sb.public_url}/portal/{session_id}"
    )
    return sb.create(session)
