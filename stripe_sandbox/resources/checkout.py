"""Checkout sessions and billing portal sessions."""

from __future__ import annotations

from typing import Any

from ..api import ApiRequest, filter_equal, route
from ..clock import expire_checkout_session
from ..errors import invalid
from ..params import get_dict, get_int, get_list, get_str, merge_metadata
from ..render import paginate
from ..sandbox import Sandbox
from ..shapes import catalog as catalog_shapes
from ..shapes import checkout as shapes
from ..store import JsonObject
from .catalog import create_price

DEFAULT_EXPIRY_S = 24 * 3600


def _line_item(sb: Sandbox, raw: Any, index: int) -> JsonObject:
    if not isinstance(raw, dict):
        raise invalid("Invalid line_items", f"line_items[{index}]")
    quantity = get_int(raw, "quantity", minimum=1) or 1
    price_id = get_str(raw, "price")
    price_data = get_dict(raw, "price_data")
    if price_id is not None:
        price = sb.store.require(price_id, "price", f"line_items[{index}][price]")
        if not price.get("active"):
            raise invalid(
                f"The price specified ({price_id}) is inactive. This field only accepts active prices.",
                f"line_items[{index}][price]",
            )
    elif price_data:
        # Inline prices are real (inactive) Price objects, as at Stripe.
        price = create_price(sb, {**price_data, "active": "false"})
    else:
        raise invalid("You must specify either price or price_data.", f"line_items[{index}]", code="parameter_missing")
    product = sb.store.get(price["product"], "product")
    description = product["name"] if product else price["id"]
    return shapes.checkout_item(sb.store.new_id("li"), price, quantity, description)


@route("POST", "/v1/checkout/sessions")
def create_session(sb: Sandbox, req: ApiRequest) -> JsonObject:
    params = req.params
    store = sb.store
    mode = get_str(params, "mode", required=True)
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
    items = [_line_item(sb, raw, i) for i, raw in enumerate(raw_items)]
    recurring = [item for item in items if item["price"]["type"] == "recurring"]
    if mode == "subscription" and not recurring:
        raise invalid("You must provide at least one recurring price in `subscription` mode.", "line_items")
    if mode == "payment" and recurring:
        raise invalid("You can only use recurring prices in `subscription` mode.", "line_items")
    if len({item["currency"] for item in items}) > 1:
        raise invalid("All line items must use the same currency.", "line_items")
    customer_id = get_str(params, "customer")
    if customer_id is not None:
        store.require(customer_id, "customer", "customer")
    now = store.now()
    expires_at = get_int(params, "expires_at") or now + DEFAULT_EXPIRY_S
    if not now + 1800 <= expires_at <= now + DEFAULT_EXPIRY_S + 60:
        raise invalid("expires_at must be between 30 minutes and 24 hours from now.", "expires_at")
    session_id = "cs_test_" + store.new_id("x", 58)[2:]
    session = shapes.checkout_session(session_id, now, mode, expires_at, f"{sb.public_url}/checkout/{session_id}")
    total = sum(item["amount_total"] for item in items)
    session.update(
        success_url=success_url,
        cancel_url=get_str(params, "cancel_url"),
        client_reference_id=get_str(params, "client_reference_id"),
        customer=customer_id,
        customer_email=get_str(params, "customer_email"),
        metadata=merge_metadata({}, params.get("metadata", {})),
        currency=items[0]["currency"],
        amount_subtotal=total,
        amount_total=total,
        locale=get_str(params, "locale"),
    )
    if mode == "payment" and customer_id is None:
        session["customer_creation"] = get_str(params, "customer_creation") or "if_required"
    meta = store.meta(session_id)
    meta["line_items"] = items
    subscription_data = get_dict(params, "subscription_data")
    meta["subscription_metadata"] = merge_metadata({}, subscription_data.get("metadata", {}))
    meta["trial_days"] = get_int(subscription_data, "trial_period_days", minimum=1)
    meta["subscription_description"] = get_str(subscription_data, "description")
    pi_data = get_dict(params, "payment_intent_data")
    meta["payment_intent_metadata"] = merge_metadata({}, pi_data.get("metadata", {}))
    meta["payment_intent_description"] = get_str(pi_data, "description")
    return sb.create(session)


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
    if session["status"] != "open":
        raise invalid(f"Only Checkout Sessions with a status of open can be expired; this one is {session['status']}.")
    expire_checkout_session(sb, session)
    return session


@route("GET", "/v1/checkout/sessions")
def list_sessions(sb: Sandbox, req: ApiRequest) -> JsonObject:
    sessions = filter_equal(
        sb.store.newest_first("checkout.session"),
        req.params,
        ["customer", "status", "payment_intent", "subscription"],
    )
    return paginate(sessions, req.params, "/v1/checkout/sessions")


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
