"""Customers and payment methods."""

from __future__ import annotations

from typing import Any

from .. import billing, charging
from ..api import ApiRequest, filter_equal, is_live, matching, route
from ..cards import card_for_number
from ..errors import invalid
from ..params import get_dict, get_int, get_str, merge_metadata
from ..render import list_page, paginate
from ..sandbox import Sandbox
from ..shapes import customers as shapes
from ..store import JsonObject

_CUSTOMER_TEXT_FIELDS = ("email", "name", "description", "phone")


def create_customer(sb: Sandbox, params: dict[str, Any]) -> JsonObject:
    store = sb.store
    customer = shapes.customer(store.new_id("cus", 14), store.now(), store.new_id("x", 8)[2:].upper())
    for name in _CUSTOMER_TEXT_FIELDS:
        if name in params:
            customer[name] = get_str(params, name)
    if "metadata" in params:
        customer["metadata"] = merge_metadata({}, params["metadata"])
    pm_id = get_str(params, "payment_method")
    sb.create(customer, "customer.created")
    if pm_id is not None:
        pm = charging.resolve_payment_method(sb, pm_id)
        charging.attach(sb, pm, customer)
    settings = get_dict(params, "invoice_settings")
    if settings.get("default_payment_method"):
        pm = _default_payment_method(sb, customer, settings["default_payment_method"])
        customer["invoice_settings"]["default_payment_method"] = pm["id"]
    return customer


def _default_payment_method(sb: Sandbox, customer: JsonObject, pm_id: str) -> JsonObject:
    """The payment method to make the default; test tokens are attached on the way."""
    param = "invoice_settings[default_payment_method]"
    pm = charging.resolve_payment_method(sb, pm_id, param)
    if pm["customer"] is None and pm_id.startswith("pm_card_"):
        charging.attach(sb, pm, customer)
    if pm["customer"] != customer["id"]:
        raise invalid(f"The PaymentMethod {pm_id} is not attached to this customer.", param, code="resource_missing")
    return pm


@route("POST", "/v1/customers")
def post_customer(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return create_customer(sb, req.params)


@route("GET", "/v1/customers/{id}")
def get_customer(sb: Sandbox, req: ApiRequest) -> JsonObject:
    customer = sb.store.get(req.arg("id"), "customer")
    if customer is None:
        return sb.store.require(req.arg("id"), "customer")
    return customer  # a deleted customer is still retrievable, as a deletion stub


@route("POST", "/v1/customers/{id}")
def update_customer(sb: Sandbox, req: ApiRequest) -> JsonObject:
    customer = sb.store.require(req.arg("id"), "customer")
    params = req.params
    changes: dict[str, Any] = {}
    for name in _CUSTOMER_TEXT_FIELDS:
        if name in params:
            changes[name] = get_str(params, name)
    if "metadata" in params:
        changes["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
    settings = get_dict(params, "invoice_settings")
    if "default_payment_method" in settings:
        pm_id = settings["default_payment_method"]
        pm = _default_payment_method(sb, customer, pm_id) if pm_id else None
        changes["invoice_settings"] = {
            **customer["invoice_settings"],
            "default_payment_method": pm["id"] if pm else None,
        }
    sb.update(customer, changes, "customer.updated")
    return customer


@route("DELETE", "/v1/customers/{id}")
def delete_customer(sb: Sandbox, req: ApiRequest) -> JsonObject:
    customer = sb.store.require(req.arg("id"), "customer")
    for sub in sb.store.newest_first("subscription"):
        if sub["customer"] == customer["id"] and sub["status"] not in ("canceled", "incomplete_expired"):
            billing.cancel_subscription(sb, sub)
    sb.emit("customer.deleted", customer)
    stub = shapes.deleted(customer["id"], "customer")
    sb.store.replace(stub)
    return stub


@route("GET", "/v1/customers")
def list_customers(sb: Sandbox, req: ApiRequest) -> JsonObject:
    where = matching(req.params, ["email"], is_live)
    return list_page(sb.store, "customer", req.params, "/v1/customers", where)


@route("POST", "/v1/payment_methods")
def create_payment_method(sb: Sandbox, req: ApiRequest) -> JsonObject:
    params = req.params
    pm_type = get_str(params, "type", required=True)
    if pm_type != "card":
        raise invalid("The sandbox only supports type=card.", "type")
    card_params = get_dict(params, "card")
    token = get_str(card_params, "token")
    if token is not None:
        return charging.resolve_payment_method(sb, token.replace("tok_", "pm_card_"), "card[token]")
    number = get_str(card_params, "number")
    if number is None:
        raise invalid("Missing required param: card[number].", "card[number]", code="parameter_missing")
    card = card_for_number(number)
    exp_month = get_int(card_params, "exp_month") or 12
    exp_year = get_int(card_params, "exp_year") or 2034
    pm = charging.create_card_payment_method(sb, card, exp_month, exp_year)
    if "metadata" in params:
        pm["metadata"] = merge_metadata({}, params["metadata"])
    return pm


@route("GET", "/v1/payment_methods/{id}")
def get_payment_method(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "payment_method")


@route("POST", "/v1/payment_methods/{id}")
def update_payment_method(sb: Sandbox, req: ApiRequest) -> JsonObject:
    pm = sb.store.require(req.arg("id"), "payment_method")
    if "metadata" in req.params:
        sb.update(pm, {"metadata": merge_metadata(pm["metadata"], req.params["metadata"])}, "payment_method.updated")
    return pm


@route("POST", "/v1/payment_methods/{id}/attach")
def attach_payment_method(sb: Sandbox, req: ApiRequest) -> JsonObject:
    customer_id = get_str(req.params, "customer", required=True)
    assert customer_id is not None
    customer = sb.store.require(customer_id, "customer", "customer")
    pm = charging.resolve_payment_method(sb, req.arg("id"))
    return charging.attach(sb, pm, customer)


@route("POST", "/v1/payment_methods/{id}/detach")
def detach_payment_method(sb: Sandbox, req: ApiRequest) -> JsonObject:
    pm = sb.store.require(req.arg("id"), "payment_method")
    if pm["customer"] is None:
        raise invalid("The payment method you provided is not attached to a customer so detachment is impossible.")
    previous_customer = pm["customer"]
    sb.update(pm, {"customer": None}, "payment_method.detached")
    customer = sb.store.get(previous_customer, "customer")
    if customer is not None and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        settings = {**customer["invoice_settings"], "default_payment_method": None}
        sb.update(customer, {"invoice_settings": settings}, "customer.updated")
    return pm


def _list_payment_methods(sb: Sandbox, params: dict[str, Any], customer_id: str | None, url: str) -> JsonObject:
    pms = sb.store.newest_first("payment_method")
    if customer_id is not None:
        pms = [pm for pm in pms if pm["customer"] == customer_id]
    pms = filter_equal(pms, params, ["customer", "type"])
    return paginate(pms, params, url)


@route("GET", "/v1/payment_methods")
def list_payment_methods(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return _list_payment_methods(sb, req.params, None, "/v1/payment_methods")


@route("GET", "/v1/customers/{id}/payment_methods")
def list_customer_payment_methods(sb: Sandbox, req: ApiRequest) -> JsonObject:
    customer = sb.store.require(req.arg("id"), "customer")
    return _list_payment_methods(sb, req.params, customer["id"], f"/v1/customers/{customer['id']}/payment_methods")


@route("GET", "/v1/customers/{id}/sources")
def list_customer_sources(sb: Sandbox, req: ApiRequest) -> JsonObject:
    # Legacy sources are not emulated (cards are PaymentMethods here); dj-stripe lists them.
    customer = sb.store.require(req.arg("id"), "customer")
    return paginate([], req.params, f"/v1/customers/{customer['id']}/sources")


@route("GET", "/v1/customers/{id}/tax_ids")
def list_customer_tax_ids(sb: Sandbox, req: ApiRequest) -> JsonObject:
    customer = sb.store.require(req.arg("id"), "customer")
    return paginate([], req.params, f"/v1/customers/{customer['id']}/tax_ids")
