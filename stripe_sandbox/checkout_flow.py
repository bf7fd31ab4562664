"""What paying on the hosted checkout page creates, as Stripe would."""

from __future__ import annotations

import copy

from . import billing, charging, context
from .cards import card_for_number
from .errors import StripeError
from .resources.customers import create_customer
from .sandbox import Sandbox
from .shapes.checkout import customer_details
from .store import JsonObject


def complete(sb: Sandbox, session: JsonObject, card_number: str, email: str | None, name: str | None) -> None:
    """Pay ``session`` with ``card_number``. Raises StripeError (402) on a declined card; a
    declined subscription checkout changes nothing, as Stripe creates nothing until it pays."""
    if session["status"] != "open":
        raise StripeError(400, f"This Checkout Session is {session['status']}.")
    card = card_for_number(card_number, "card_number")
    meta = sb.store.meta(session["id"])
    email = email or session["customer_email"]
    with context.automatic():
        if session["mode"] == "subscription" and card.charge_decline is not None and not meta.get("trial_days"):
            raise charging.decline_error(card.charge_decline, None, None)
        customer = _customer_for(sb, session, email, name)
        pm = charging.create_card_payment_method(sb, card)
        if customer is not None:
            charging.attach(sb, pm, customer)
        if session["mode"] == "subscription":
            assert customer is not None
            _complete_subscription(sb, session, customer, pm)
        else:
            _complete_payment(sb, session, customer, pm)
        details = customer_details(email or (customer or {}).get("email"), name or (customer or {}).get("name"))
        sb.update(session, {"status": "complete", "customer_details": details, "url": None})
        sb.emit("checkout.session.completed", session)


def _customer_for(sb: Sandbox, session: JsonObject, email: str | None, name: str | None) -> JsonObject | None:
    if session["customer"] is not None:
        return sb.store.require(session["customer"], "customer")
    if session["mode"] == "payment" and session["customer_creation"] != "always":
        return None  # Stripe's "guest" payment: no Customer object is created
    params: dict[str, object] = {"email": email, "name": name}
    customer = create_customer(sb, {k: v for k, v in params.items() if v})
    sb.update(session, {"customer": customer["id"]})
    return customer


def _complete_subscription(sb: Sandbox, session: JsonObject, customer: JsonObject, pm: JsonObject) -> None:
    meta = sb.store.meta(session["id"])
    specs = [
        billing.ItemSpec(sb.store.require(item["price"]["id"], "price"), item["quantity"], {})
        for item in meta["line_items"]
    ]
    trial_days = meta.get("trial_days")
    sub = billing.create_subscription(
        sb,
        customer,
        specs,
        default_payment_method=pm,
        trial_period_days=trial_days,
        metadata=dict(meta.get("subscription_metadata", {})),
        cancel_at_period_end=False,
        payment_behavior="allow_incomplete",
        description=meta.get("subscription_description"),
    )
    sb.update(
        session,
        {
            "subscription": sub["id"],
            "invoice": sub["latest_invoice"],
            "payment_status": "no_payment_required" if trial_days else "paid",
        },
    )


def _complete_payment(sb: Sandbox, session: JsonObject, customer: JsonObject | None, pm: JsonObject) -> None:
    meta = sb.store.meta(session["id"])
    pi = sb.store.get(session["payment_intent"], "payment_intent") if session["payment_intent"] else None
    if pi is None:
        pi = charging.create_payment_intent(
            sb,
            session["amount_total"],
            session["currency"],
            customer=customer["id"] if customer else None,
            metadata=copy.deepcopy(meta.get("payment_intent_metadata", {})),
            description=meta.get("payment_intent_description"),
        )
        sb.update(session, {"payment_intent": pi["id"]})
    decline = charging.confirm_payment_intent(sb, pi, pm)
    if decline is not None:
        raise charging.decline_error(decline, sb.store.get(pi["latest_charge"], "charge"), None)
    sb.update(session, {"payment_status": "paid"})
