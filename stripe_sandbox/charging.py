"""Payment methods, payment intents, charges and refunds: the money-moving primitives."""

from __future__ import annotations

from typing import Any

from .cards import TOKENS, Decline, TestCard, card_for_number
from .errors import StripeError, invalid
from .sandbox import Sandbox
from .shapes import customers as customer_shapes
from .shapes import payments as payment_shapes
from .store import JsonObject


def create_card_payment_method(sb: Sandbox, card: TestCard, exp_month: int = 12, exp_year: int = 2034) -> JsonObject:
    store = sb.store
    pm = customer_shapes.card_payment_method(
        store.new_id("pm"),
        store.now(),
        brand=card.brand,
        last4=card.last4,
        exp_month=exp_month,
        exp_year=exp_year,
        fingerprint=card.fingerprint,
        funding=card.funding,
    )
    store.meta(pm["id"])["card_number"] = card.number
    return sb.create(pm)


def resolve_payment_method(sb: Sandbox, pm_id: str, param: str = "payment_method") -> JsonObject:
    """A payment method id, or a test token such as ``pm_card_visa`` (which, as at Stripe,
    creates a fresh payment method each time it is used)."""
    if pm_id in TOKENS:
        return create_card_payment_method(sb, card_for_number(TOKENS[pm_id]))
    return sb.store.require(pm_id, "payment_method", param)


def card_of(sb: Sandbox, pm: JsonObject) -> TestCard:
    return card_for_number(sb.store.meta(pm["id"])["card_number"])


def attach(sb: Sandbox, pm: JsonObject, customer: JsonObject) -> JsonObject:
    if pm["customer"] not in (None, customer["id"]):
        raise invalid("The payment method you provided has already been attached to a customer.", "payment_method")
    if pm["customer"] is None:
        sb.update(pm, {"customer": customer["id"]})
        sb.emit("payment_method.attached", pm)
    return pm


def create_payment_intent(
    sb: Sandbox,
    amount: int,
    currency: str,
    *,
    customer: str | None = None,
    metadata: dict[str, str] | None = None,
    description: str | None = None,
) -> JsonObject:
    store = sb.store
    pi = payment_shapes.payment_intent(store.new_id("pi"), store.now(), amount, currency, store.new_id("s")[2:])
    pi["customer"] = customer
    pi["metadata"] = dict(metadata or {})
    pi["description"] = description
    return sb.create(pi, "payment_intent.created")


def decline_error(decline: Decline, charge: JsonObject | None, pi: JsonObject | None) -> StripeError:
    extra: dict[str, Any] = {"decline_code": decline.decline_code}
    if charge is not None:
        extra["charge"] = charge["id"]
    if pi is not None:
        extra["payment_intent"] = pi
    return StripeError(402, decline.message, error_type="card_error", code=decline.code, extra=extra)


def confirm_payment_intent(sb: Sandbox, pi: JsonObject, pm: JsonObject) -> Decline | None:
    """Charge ``pm`` for the intent. Returns the decline, or None when the charge succeeded."""
    if pi["status"] == "succeeded":
        raise invalid("This PaymentIntent has already succeeded.", code="payment_intent_unexpected_state")
    store = sb.store
    card = card_of(sb, pm)
    decline = card.charge_decline
    charge = payment_shapes.charge(store.new_id("ch"), store.now(), pi["amount"], pi["currency"], pm)
    charge.update(
        customer=pi["customer"], payment_intent=pi["id"], description=pi["description"], metadata=dict(pi["metadata"])
    )
    if decline is not None:
        charge.update(
            status="failed",
            paid=False,
            captured=False,
            amount_captured=0,
            failure_code=decline.code,
            failure_message=decline.message,
            outcome={
                **charge["outcome"],
                "network_status": "declined_by_network",
                "reason": decline.decline_code,
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            },
        )
        sb.create(charge, "charge.failed")
        error = {
            "type": "card_error",
            "code": decline.code,
            "decline_code": decline.decline_code,
            "message": decline.message,
            "charge": charge["id"],
            "payment_method": pm,
            "doc_url": f"https://docs.stripe.com/error-codes/{decline.code.replace('_', '-')}",
        }
        sb.update(
            pi,
            {"status": "requires_payment_method", "latest_charge": charge["id"], "last_payment_error": error},
        )
        sb.emit("payment_intent.payment_failed", pi)
        return decline
    sb.create(charge, "charge.succeeded")
    sb.update(
        pi,
        {
            "status": "succeeded",
            "amount_received": pi["amount"],
            "latest_charge": charge["id"],
            "payment_method": pm["id"],
            "last_payment_error": None,
        },
    )
    sb.emit("payment_intent.succeeded", pi)
    return None


def refund_charge(
    sb: Sandbox, charge: JsonObject, amount: int | None, reason: str | None, metadata: dict[str, str]
) -> JsonObject:
    remaining = charge["amount_captured"] - charge["amount_refunded"]
    if charge["status"] != "succeeded":
        raise invalid(f"Charge {charge['id']} has not succeeded; it cannot be refunded.", "charge")
    if remaining <= 0:
        raise invalid(f"Charge {charge['id']} has already been refunded.", "charge", code="charge_already_refunded")
    amount = remaining if amount is None else amount
    if amount <= 0 or amount > remaining:
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            "amount",
            code="amount_too_large",
        )
    store = sb.store
    refund = payment_shapes.refund(store.new_id("re"), store.now(), charge, amount, reason)
    refund["metadata"] = metadata
    sb.create(refund, "refund.created")
    refunds = dict(charge["refunds"])
    refunds["data"] = [refund, *refunds["data"]]
    total = charge["amount_refunded"] + amount
    sb.update(
        charge,
        {"amount_refunded": total, "refunded": total == charge["amount_captured"], "refunds": refunds},
        "charge.refunded",
    )
    return refund
