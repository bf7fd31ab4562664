"""The subscription engine: subscriptions, their invoices, payment attempts and dunning.

Simplifications (documented in docs/sandbox.md): no prorations, no taxes or discounts,
invoices are finalized as soon as they are created, and one currency per subscription.
"""

from __future__ import annotations

import calendar
import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import charging
from .errors import invalid
from .sandbox import Sandbox
from .shapes import billing as shapes
from .shapes import catalog as catalog_shapes
from .store import JsonObject

DAY = 86400
TRIAL_WILL_END_NOTICE_S = 3 * DAY


@dataclass
class ItemSpec:
    price: JsonObject
    quantity: int
    metadata: dict[str, str]


def add_interval(timestamp: int, interval: str, count: int) -> int:
    """Calendar arithmetic as Stripe bills: a month from Jan 31 is Feb 28/29."""
    if interval == "day":
        return timestamp + count * DAY
    if interval == "week":
        return timestamp + count * 7 * DAY
    moment = datetime.fromtimestamp(timestamp, UTC)
    months = count * (12 if interval == "year" else 1)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def next_period(sub: JsonObject, start: int) -> tuple[int, int]:
    recurring = sub["items"]["data"][0]["price"]["recurring"]
    return start, add_interval(start, recurring["interval"], recurring["interval_count"])


def current_period_end(sub: JsonObject) -> int:
    return int(min(item["current_period_end"] for item in sub["items"]["data"]))


def check_item_prices(specs: list[ItemSpec], currency: str | None = None) -> str:
    if not specs:
        raise invalid("Missing required param: items.", "items", code="parameter_missing")
    for index, spec in enumerate(specs):
        if spec.price["type"] != "recurring":
            raise invalid(
                f"The price specified ({spec.price['id']}) is not a recurring price.",
                f"items[{index}][price]",
            )
        if not spec.price["active"]:
            raise invalid(f"The price specified ({spec.price['id']}) is inactive.", f"items[{index}][price]")
    currencies = {spec.price["currency"] for spec in specs}
    if len(currencies) > 1 or (currency is not None and currencies != {currency}):
        raise invalid("All prices on a subscription must have the same currency.", "items")
    intervals = {(s.price["recurring"]["interval"], s.price["recurring"]["interval_count"]) for s in specs}
    if len(intervals) > 1:
        raise invalid("All prices on a subscription must have the same recurring interval.", "items")
    return str(currencies.pop())


def build_item(sb: Sandbox, sub: JsonObject, spec: ItemSpec, period: tuple[int, int]) -> JsonObject:
    item = shapes.subscription_item(
        sb.store.new_id("si", 14),
        sb.store.now(),
        sub["id"],
        copy.deepcopy(spec.price),
        catalog_shapes.plan_from_price(spec.price),
        spec.quantity,
        period,
    )
    item["metadata"] = dict(spec.metadata)
    return item


def payment_method_for(sb: Sandbox, sub: JsonObject) -> JsonObject | None:
    pm_id = sub["default_payment_method"]
    if pm_id is None:
        customer = sb.store.get(sub["customer"], "customer")
        pm_id = customer["invoice_settings"]["default_payment_method"] if customer else None
    return sb.store.get(pm_id, "payment_method") if pm_id else None


def create_subscription(
    sb: Sandbox,
    customer: JsonObject,
    specs: list[ItemSpec],
    *,
    default_payment_method: JsonObject | None,
    trial_period_days: int | None,
    metadata: dict[str, str],
    cancel_at_period_end: bool,
    payment_behavior: str,
    description: str | None = None,
) -> JsonObject:
    currency = check_item_prices(specs)
    store = sb.store
    now = store.now()
    pm = default_payment_method
    if pm is None and customer["invoice_settings"]["default_payment_method"]:
        pm = store.get(customer["invoice_settings"]["default_payment_method"], "payment_method")
    charges_now = not trial_period_days
    if payment_behavior == "error_if_incomplete" and charges_now:
        # Decide before changing anything: Stripe creates nothing when it answers 402 here.
        if pm is None:
            raise invalid("This customer has no attached payment source or default payment method.", "customer")
        decline = charging.card_of(sb, pm).charge_decline
        if decline is not None:
            raise charging.decline_error(decline, None, None)

    sub = shapes.subscription(store.new_id("sub"), now, customer["id"], currency)
    sub.update(
        metadata=dict(metadata),
        description=description,
        cancel_at_period_end=cancel_at_period_end,
        default_payment_method=default_payment_method["id"] if default_payment_method else None,
    )
    if trial_period_days:
        trial_end = now + trial_period_days * DAY
        period = (now, trial_end)
        sub.update(status="trialing", trial_start=now, trial_end=trial_end)
    else:
        period = next_period({"items": {"data": [{"price": specs[0].price}]}}, now)
    sub["items"]["data"] = [build_item(sb, sub, spec, period) for spec in specs]
    if cancel_at_period_end:
        sub.update(cancel_at=period[1], canceled_at=now)
    sb.create(sub, "customer.subscription.created")

    invoice = create_invoice(sb, sub, "subscription_create", period, zero=bool(trial_period_days))
    sb.update(sub, {"latest_invoice": invoice["id"]})
    if trial_period_days:
        pay_invoice(sb, invoice, None)
        return sub
    if pm is not None and payment_behavior != "default_incomplete" and pay_invoice(sb, invoice, pm):
        sb.update(sub, {"status": "active"}, "customer.subscription.updated")
    return sub


def create_invoice(
    sb: Sandbox, sub: JsonObject, billing_reason: str, period: tuple[int, int], *, zero: bool = False
) -> JsonObject:
    """A finalized invoice for one period of ``sub`` (``zero``: the $0 invoice of a trial)."""
    store = sb.store
    customer = store.get(sub["customer"], "customer") or {"id": sub["customer"]}
    invoice = shapes.invoice(store.new_id("in"), store.now(), customer, sub["currency"], billing_reason, period)
    lines = []
    for item in sub["items"]["data"]:
        price = item["price"]
        amount = 0 if zero else price["unit_amount"] * item["quantity"]
        product = store.get(price["product"], "product")
        name = product["name"] if product else price["product"]
        label = f"Trial period for {name}" if zero else f"{item['quantity']} x {name}"
        lines.append(
            shapes.invoice_line(
                store.new_id("il"),
                invoice["id"],
                amount=amount,
                currency=sub["currency"],
                description=label,
                quantity=item["quantity"],
                price_obj=price,
                period=(item["current_period_start"], item["current_period_end"]),
                sub_id=sub["id"],
                sub_item_id=item["id"],
            )
        )
    total = sum(line["amount"] for line in lines)
    invoice["lines"]["data"] = lines
    invoice.update(
        subscription=sub["id"],
        parent=shapes.subscription_parent(sub["id"], sub["metadata"]),
        subtotal=total,
        subtotal_excluding_tax=total,
        total=total,
        total_excluding_tax=total,
        amount_due=total,
        amount_remaining=total,
        default_payment_method=None,
    )
    sb.create(invoice, "invoice.created")
    sequence = customer.get("next_invoice_sequence", 1)
    if "next_invoice_sequence" in customer:
        sb.update(customer, {"next_invoice_sequence": sequence + 1})
    now = store.now()
    sb.update(
        invoice,
        {
            "status": "open",
            "number": f"{customer.get('invoice_prefix', 'SANDBOX')}-{sequence:04d}",
            "effective_at": now,
            "status_transitions": {**invoice["status_transitions"], "finalized_at": now},
            "webhooks_delivered_at": now,
        },
        "invoice.finalized",
    )
    return invoice


def mark_invoice_paid(sb: Sandbox, invoice: JsonObject) -> None:
    now = sb.store.now()
    sb.update(
        invoice,
        {
            "status": "paid",
            "amount_paid": invoice["amount_due"],
            "amount_remaining": 0,
            "next_payment_attempt": None,
            "status_transitions": {**invoice["status_transitions"], "paid_at": now},
        },
    )
    sb.emit("invoice.paid", invoice)
    sb.emit("invoice.payment_succeeded", invoice)


def pay_invoice(sb: Sandbox, invoice: JsonObject, pm: JsonObject | None) -> bool:
    """One payment attempt. True when the invoice ends up paid."""
    if invoice["status"] != "open":
        raise invalid(f"Invoice {invoice['id']} is {invoice['status']}; only open invoices can be paid.")
    if invoice["amount_due"] == 0:
        sb.update(invoice, {"attempted": True})
        mark_invoice_paid(sb, invoice)
        return True
    attempts = invoice["attempt_count"] + 1
    if pm is None:
        sb.update(invoice, {"attempted": True, "attempt_count": attempts})
        sb.emit("invoice.payment_failed", invoice)
        return False
    pi = charging.create_payment_intent(
        sb,
        invoice["amount_due"],
        invoice["currency"],
        customer=invoice["customer"],
        description="Subscription update"
        if invoice["billing_reason"] != "subscription_create"
        else "Subscription creation",
    )
    payment = shapes.invoice_payment(
        sb.store.new_id("inpay"), sb.store.now(), invoice["id"], invoice["amount_due"], invoice["currency"], pi["id"]
    )
    decline = charging.confirm_payment_intent(sb, pi, pm)
    payments = dict(invoice["payments"])
    if decline is None:
        payment.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            status_transitions={"canceled_at": None, "paid_at": sb.store.now()},
        )
    else:
        payment["status"] = "failed"
    payments["data"] = [payment, *payments["data"]]
    sb.update(invoice, {"attempted": True, "attempt_count": attempts, "payments": payments})
    if decline is None:
        mark_invoice_paid(sb, invoice)
        return True
    sb.emit("invoice.payment_failed", invoice)
    return False


def cancel_subscription(sb: Sandbox, sub: JsonObject, reason: str = "cancellation_requested") -> JsonObject:
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    now = sb.store.now()
    sb.update(
        sub,
        {
            "status": "canceled",
            "canceled_at": sub["canceled_at"] or now,
            "ended_at": now,
            "cancellation_details": {**sub["cancellation_details"], "reason": reason},
        },
    )
    sb.emit("customer.subscription.deleted", sub)
    return sub


def set_cancel_at_period_end(sb: Sandbox, sub: JsonObject, flag: bool) -> dict[str, object]:
    if flag:
        return {"cancel_at_period_end": True, "cancel_at": current_period_end(sub), "canceled_at": sb.store.now()}
    return {"cancel_at_period_end": False, "cancel_at": None, "canceled_at": None}


def replace_items(sb: Sandbox, sub: JsonObject, updates: list[dict[str, Any]]) -> JsonObject:
    """The ``items`` list after an update: change price/quantity of existing items by ``id``,
    delete with ``deleted``, add new ones. Periods carry over (no proration)."""
    items: JsonObject = copy.deepcopy(sub["items"])
    by_id = {item["id"]: item for item in items["data"]}
    period = (sub["items"]["data"][0]["current_period_start"], current_period_end(sub))
    for index, update in enumerate(updates):
        item_id = update.get("id")
        price = update.get("price")
        quantity = update.get("quantity")
        if item_id is not None:
            if item_id not in by_id:
                raise invalid(f"Subscription item {item_id} is not part of this subscription.", f"items[{index}][id]")
            item = by_id[item_id]
            if update.get("deleted"):
                items["data"].remove(item)
                continue
            if isinstance(price, dict):
                item["price"] = copy.deepcopy(price)
                item["plan"] = catalog_shapes.plan_from_price(price)
            if isinstance(quantity, int):
                item["quantity"] = quantity
        elif isinstance(price, dict):
            spec = ItemSpec(price, quantity if isinstance(quantity, int) else 1, {})
            items["data"].append(build_item(sb, sub, spec, period))
        else:
            raise invalid("Each item needs an id or a price.", f"items[{index}]")
    if not items["data"]:
        raise invalid("A subscription needs at least one item.", "items")
    check_item_prices([ItemSpec(i["price"], i["quantity"], {}) for i in items["data"]], sub["currency"])
    return items


def start_new_period(sb: Sandbox, sub: JsonObject, start: int, billing_reason: str) -> bool:
    """Renewal or trial end: move the items to the next period, invoice it and charge.
    Success -> active; failure -> past_due (dunning retries follow). One
    ``customer.subscription.updated`` carries the period and the status change."""
    period = next_period(sub, start)
    before = {k: copy.deepcopy(sub[k]) for k in ("items", "status", "latest_invoice", "billing_cycle_anchor")}
    sub["items"] = _items_for_period(sub, period)
    if sub["status"] == "trialing":
        sub["billing_cycle_anchor"] = start
    invoice = create_invoice(sb, sub, billing_reason, period)
    paid = pay_invoice(sb, invoice, payment_method_for(sb, sub))
    sub["latest_invoice"] = invoice["id"]
    sub["status"] = "active" if paid else "past_due"
    if not paid:
        sb.update(invoice, {"next_payment_attempt": sb.store.now() + sb.config.payment_retry_interval_s})
    sb.store.touch()
    sb.emit("customer.subscription.updated", sub, {k: v for k, v in before.items() if sub[k] != v})
    if not paid:
        _mark_delinquent(sb, sub["customer"], True)
    return paid


def _items_for_period(sub: JsonObject, period: tuple[int, int]) -> JsonObject:
    items: JsonObject = copy.deepcopy(sub["items"])
    for item in items["data"]:
        item["current_period_start"], item["current_period_end"] = period
    return items


def _mark_delinquent(sb: Sandbox, customer_id: str, flag: bool) -> None:
    customer = sb.store.get(customer_id, "customer")
    if customer is not None and not customer.get("deleted"):
        sb.update(customer, {"delinquent": flag}, "customer.updated")


def retry_invoice(sb: Sandbox, invoice: JsonObject) -> None:
    """A dunning retry. After the last allowed attempt the subscription becomes
    ``config.dunning_final_status`` (unpaid, or canceled)."""
    sub_id = invoice["subscription"]
    sub = sb.store.get(sub_id, "subscription") if sub_id else None
    pm = payment_method_for(sb, sub) if sub else None
    if pay_invoice(sb, invoice, pm):
        if sub is not None and sub["status"] in ("past_due", "unpaid"):
            sb.update(sub, {"status": "active"}, "customer.subscription.updated")
            _mark_delinquent(sb, sub["customer"], False)
        return
    if invoice["attempt_count"] < sb.config.max_payment_attempts:
        sb.update(invoice, {"next_payment_attempt": sb.store.now() + sb.config.payment_retry_interval_s})
        return
    sb.update(invoice, {"next_payment_attempt": None})
    if sub is None or sub["status"] != "past_due":
        return
    if sb.config.dunning_final_status == "canceled":
        cancel_subscription(sb, sub, reason="payment_failed")
    else:
        sb.update(sub, {"status": "unpaid"}, "customer.subscription.updated")


def pay_invoice_now(sb: Sandbox, invoice: JsonObject, pm: JsonObject | None) -> JsonObject:
    """``POST /v1/invoices/{id}/pay``."""
    sub = sb.store.get(invoice["subscription"], "subscription") if invoice["subscription"] else None
    if pm is None and sub is not None:
        pm = payment_method_for(sb, sub)
    if pm is None:
        raise invalid("There is no payment method to pay this invoice with.", "payment_method")
    if not pay_invoice(sb, invoice, pm):
        decline = charging.card_of(sb, pm).charge_decline
        assert decline is not None
        raise charging.decline_error(decline, None, None)
    if sub is not None and sub["status"] in ("incomplete", "past_due", "unpaid"):
        sb.update(sub, {"status": "active"}, "customer.subscription.updated")
    return invoice
