"""Payment intents, charges, refunds and invoices."""

from __future__ import annotations

from typing import Any

from .. import billing, charging
from ..api import ApiRequest, matching, route
from ..errors import invalid
from ..params import get_bool, get_int, get_str, merge_metadata
from ..render import list_page, paginate
from ..sandbox import Sandbox
from ..store import JsonObject


def _confirm_or_raise(sb: Sandbox, pi: JsonObject, pm_id: str | None) -> None:
    pm_id = pm_id or pi["payment_method"]
    if pm_id is None:
        raise invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            "payment_method",
            code="payment_intent_unexpected_state",
        )
    pm = charging.resolve_payment_method(sb, pm_id)
    decline = charging.confirm_payment_intent(sb, pi, pm)
    if decline is not None:
        charge_obj = sb.store.get(pi["latest_charge"], "charge")
        raise charging.decline_error(decline, charge_obj, pi)


@route("POST", "/v1/payment_intents")
def create_payment_intent(sb: Sandbox, req: ApiRequest) -> JsonObject:
    params = req.params
    amount = get_int(params, "amount", required=True, minimum=1)
    currency = get_str(params, "currency", required=True)
    assert amount is not None
    assert currency is not None
    customer_id = get_str(params, "customer")
    if customer_id is not None:
        sb.store.require(customer_id, "customer", "customer")
    pi = charging.create_payment_intent(
        sb,
        amount,
        currency.lower(),
        customer=customer_id,
        metadata=merge_metadata({}, params.get("metadata", {})),
        description=get_str(params, "description"),
    )
    pm_id = get_str(params, "payment_method")
    if pm_id is not None:
        pi["payment_method"] = charging.resolve_payment_method(sb, pm_id)["id"]
        pi["status"] = "requires_confirmation"
    if get_bool(params, "confirm"):
        # Confirm with the payment method resolved above: a test token (``pm_card_...``) is
        # converted once, so the intent, its charge and its error name the same one.
        _confirm_or_raise(sb, pi, None)
    return pi


@route("GET", "/v1/payment_intents/{id}")
def get_payment_intent(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "payment_intent")


def _update_metadata_and_description(sb: Sandbox, req: ApiRequest, kind: str, event_type: str | None) -> JsonObject:
    """The update these resources share here: metadata (merged, as at Stripe) and description."""
    obj = sb.store.require(req.arg("id"), kind)
    changes: dict[str, Any] = {}
    if "metadata" in req.params:
        changes["metadata"] = merge_metadata(obj["metadata"], req.params["metadata"])
    if "description" in req.params:
        changes["description"] = get_str(req.params, "description")
    sb.update(obj, changes, event_type)
    return obj


@route("POST", "/v1/payment_intents/{id}")
def update_payment_intent(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return _update_metadata_and_description(sb, req, "payment_intent", None)


@route("POST", "/v1/payment_intents/{id}/confirm")
def confirm_payment_intent(sb: Sandbox, req: ApiRequest) -> JsonObject:
    pi = sb.store.require(req.arg("id"), "payment_intent")
    _confirm_or_raise(sb, pi, get_str(req.params, "payment_method"))
    return pi


@route("POST", "/v1/payment_intents/{id}/cancel")
def cancel_payment_intent(sb: Sandbox, req: ApiRequest) -> JsonObject:
    pi = sb.store.require(req.arg("id"), "payment_intent")
    if pi["status"] in ("succeeded", "canceled"):
        raise invalid(
            f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}.",
            code="payment_intent_unexpected_state",
        )
    reason = get_str(req.params, "cancellation_reason")
    sb.update(pi, {"status": "canceled", "canceled_at": sb.store.now(), "cancellation_reason": reason})
    sb.emit("payment_intent.canceled", pi)
    return pi


@route("GET", "/v1/payment_intents")
def list_payment_intents(sb: Sandbox, req: ApiRequest) -> JsonObject:
    where = matching(req.params, ["customer"])
    return list_page(sb.store, "payment_intent", req.params, "/v1/payment_intents", where)


@route("GET", "/v1/charges/{id}")
def get_charge(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "charge")


@route("POST", "/v1/charges/{id}")
def update_charge(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return _update_metadata_and_description(sb, req, "charge", "charge.updated")


@route("GET", "/v1/charges")
def list_charges(sb: Sandbox, req: ApiRequest) -> JsonObject:
    where = matching(req.params, ["customer", "payment_intent"])
    return list_page(sb.store, "charge", req.params, "/v1/charges", where)


@route("POST", "/v1/refunds")
def create_refund(sb: Sandbox, req: ApiRequest) -> JsonObject:
    params = req.params
    charge_id = get_str(params, "charge")
    pi_id = get_str(params, "payment_intent")
    if charge_id is None and pi_id is None:
        raise invalid("One of the following params should be provided for this request: payment_intent or charge.")
    if charge_id is None:
        assert pi_id is not None
        pi = sb.store.require(pi_id, "payment_intent", "payment_intent")
        if pi["latest_charge"] is None:
            raise invalid(f"PaymentIntent {pi_id} does not have a successful charge to refund.", "payment_intent")
        charge_id = pi["latest_charge"]
    charge = sb.store.require(charge_id, "charge", "charge")
    return charging.refund_charge(
        sb,
        charge,
        get_int(params, "amount", minimum=1),
        get_str(params, "reason"),
        merge_metadata({}, params.get("metadata", {})),
    )


@route("GET", "/v1/refunds/{id}")
def get_refund(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "refund")


@route("POST", "/v1/refunds/{id}")
def update_refund(sb: Sandbox, req: ApiRequest) -> JsonObject:
    refund = sb.store.require(req.arg("id"), "refund")
    if "metadata" in req.params:
        sb.update(refund, {"metadata": merge_metadata(refund["metadata"], req.params["metadata"])}, "refund.updated")
    return refund


@route("GET", "/v1/refunds")
def list_refunds(sb: Sandbox, req: ApiRequest) -> JsonObject:
    where = matching(req.params, ["charge", "payment_intent"])
    return list_page(sb.store, "refund", req.params, "/v1/refunds", where)


@route("GET", "/v1/charges/{id}/refunds")
def list_charge_refunds(sb: Sandbox, req: ApiRequest) -> JsonObject:
    charge = sb.store.require(req.arg("id"), "charge")
    where = matching({"charge": charge["id"]}, ["charge"])
    return list_page(sb.store, "refund", req.params, f"/v1/charges/{charge['id']}/refunds", where)


@route("GET", "/v1/invoices/{id}")
def get_invoice(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "invoice")


@route("POST", "/v1/invoices/{id}")
def update_invoice(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return _update_metadata_and_description(sb, req, "invoice", "invoice.updated")


@route("POST", "/v1/invoices/{id}/pay")
def pay_invoice(sb: Sandbox, req: ApiRequest) -> JsonObject:
    invoice = sb.store.require(req.arg("id"), "invoice")
    pm_id = get_str(req.params, "payment_method")
    pm = charging.resolve_payment_method(sb, pm_id) if pm_id else None
    return billing.pay_invoice_now(sb, invoice, pm)


@route("GET", "/v1/invoices")
def list_invoices(sb: Sandbox, req: ApiRequest) -> JsonObject:
    where = matching(req.params, ["customer", "subscription", "status"])
    return list_page(sb.store, "invoice", req.params, "/v1/invoices", where)


@route("GET", "/v1/invoices/{id}/lines")
def list_invoice_lines(sb: Sandbox, req: ApiRequest) -> JsonObject:
    invoice = sb.store.require(req.arg("id"), "invoice")
    return paginate(list(invoice["lines"]["data"]), req.params, f"/v1/invoices/{invoice['id']}/lines")
