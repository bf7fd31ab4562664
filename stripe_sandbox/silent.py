"""Silent changes: what someone does in Stripe's dashboard, or what a lost webhook hid.

Each function changes an object the way Stripe would (the same engine as the API) but records
no event and delivers nothing: the service can only learn of it by listing or retrieving. The
``/_sandbox/silent/...`` routes call these (see docs/sandbox.md), one per field the service's
reconciliation compares.
"""

from __future__ import annotations

import copy
from typing import Any

from . import billing, charging, context
from .errors import invalid
from .params import merge_metadata
from .sandbox import Sandbox
from .shapes import customers as customer_shapes
from .store import JsonObject

ENDED = ("canceled", "incomplete_expired")
PAYMENT_INTENT_STATUSES = (
    "canceled",
    "processing",
    "requires_action",
    "requires_capture",
    "requires_confirmation",
    "requires_payment_method",
    "succeeded",
)


def _int(body: dict[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        raise invalid(f"{name} must be an integer" + (f" of at least {minimum}" if minimum is not None else ""), name)
    return value


def _item(sub: JsonObject, item_id: Any) -> JsonObject:
    items: list[JsonObject] = sub["items"]["data"]
    if item_id is None:
        return items[0]
    for item in items:
        if item["id"] == item_id:
            return item
    raise invalid(f"Subscription item {item_id} is not part of {sub['id']}.", "item")


def cancel_subscription(sb: Sandbox, sub: JsonObject, body: dict[str, Any]) -> JsonObject:
    with context.silently():
        return billing.cancel_subscription(sb, sub)


def reprice_subscription(sb: Sandbox, sub: JsonObject, body: dict[str, Any]) -> JsonObject:
    """Another price (and optionally quantity) on one item (``item``, default the first)."""
    if sub["status"] in ENDED:
        raise invalid("A canceled subscription cannot change its items.")
    price_id = body.get("price")
    quantity = _int(body, "quantity", minimum=1)
    if price_id is None and quantity is None:
        raise invalid("Give a price, a quantity, or both.", "price")
    price = sb.store.require(str(price_id), "price", "price") if price_id is not None else None
    item = _item(sub, body.get("item"))
    items = billing.replace_items(sb, sub, [{"id": item["id"], "price": price, "quantity": quantity}])
    with context.silently():
        sb.update(sub, {"items": items})
    return sub


def move_period_end(sb: Sandbox, sub: JsonObject, body: dict[str, Any]) -> JsonObject:
    """Move ``current_period_end`` (and optionally ``current_period_start``) of the items, where
    this API version keeps the period; ``item`` limits it to one. A subscription that cancels at
    period end cancels at the new end."""
    end = _int(body, "current_period_end", minimum=1)
    if end is None:
        raise invalid("Missing current_period_end.", "current_period_end")
    start = _int(body, "current_period_start", minimum=1)
    only = _item(sub, body["item"])["id"] if body.get("item") is not None else None
    items: JsonObject = copy.deepcopy(sub["items"])
    for item in items["data"]:
        if only is None or item["id"] == only:
            item["current_period_end"] = end
            if start is not None:
                item["current_period_start"] = start
    if any(item["current_period_start"] >= item["current_period_end"] for item in items["data"]):
        raise invalid("current_period_end must be after current_period_start.", "current_period_end")
    changes: JsonObject = {"items": items}
    if sub["cancel_at_period_end"]:
        changes["cancel_at"] = min(item["current_period_end"] for item in items["data"])
    with context.silently():
        sb.update(sub, changes)
    return sub


def set_cancel_at_period_end(sb: Sandbox, sub: JsonObject, body: dict[str, Any]) -> JsonObject:
    flag = body.get("cancel_at_period_end")
    if not isinstance(flag, bool):
        raise invalid("cancel_at_period_end must be true or false.", "cancel_at_period_end")
    if sub["status"] in ENDED:
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    with context.silently():
        sb.update(sub, billing.set_cancel_at_period_end(sb, sub, flag))
    return sub


def refund_charge(sb: Sandbox, charge: JsonObject, body: dict[str, Any]) -> JsonObject:
    amount = _int(body, "amount", minimum=1)
    with context.silently():
        return charging.refund_charge(sb, charge, amount, None, {})


def change_payment_intent(sb: Sandbox, pi: JsonObject, body: dict[str, Any]) -> JsonObject:
    """Another ``status`` and/or ``amount``. A succeeded intent received its (new) amount; a
    canceled one gets ``canceled_at``."""
    status = body.get("status")
    amount = _int(body, "amount", minimum=1)
    if status is None and amount is None:
        raise invalid("Give a status, an amount, or both.", "status")
    if status is not None and status not in PAYMENT_INTENT_STATUSES:
        raise invalid(f"status must be one of {', '.join(PAYMENT_INTENT_STATUSES)}", "status")
    changes: JsonObject = {}
    if amount is not None:
        changes["amount"] = amount
    if status is not None:
        changes["status"] = status
    new_status = status or pi["status"]
    if new_status == "succeeded":
        changes["amount_received"] = amount if amount is not None else pi["amount"]
    if new_status == "canceled" and pi["canceled_at"] is None:
        changes["canceled_at"] = sb.store.now()
    with context.silently():
        sb.update(pi, changes)
    return pi


def change_metadata(sb: Sandbox, obj: JsonObject, body: dict[str, Any]) -> JsonObject:
    """Stripe's metadata semantics: keys merge, ``""`` removes a key, ``"metadata": ""`` all."""
    if "metadata" not in obj:
        raise invalid(f"{obj['object']} has no metadata.", "metadata")
    if "metadata" not in body:
        raise invalid("Missing metadata.", "metadata")
    with context.silently():
        sb.update(obj, {"metadata": merge_metadata(obj["metadata"], body["metadata"])})
    return obj


def delete_customer(sb: Sandbox, customer: JsonObject, body: dict[str, Any]) -> JsonObject:
    """As ``DELETE /v1/customers/{id}``: its subscriptions are canceled, a stub remains."""
    with context.silently():
        for sub in sb.store.newest_first("subscription"):
            if sub["customer"] == customer["id"] and sub["status"] not in ENDED:
                billing.cancel_subscription(sb, sub)
    stub = customer_shapes.deleted(customer["id"], "customer")
    sb.store.replace(stub)
    return stub


def update_fields(sb: Sandbox, obj: JsonObject, changes: dict[str, Any]) -> JsonObject:
    """Overwrite top-level fields of any object (a status Stripe sets that no route here sets)."""
    if {"id", "object"} & set(changes):
        raise invalid("id and object cannot be changed.")
    with context.silently():
        sb.update(obj, changes)
    return obj
