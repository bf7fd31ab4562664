"""Bulk creation for benchmarks and large tests: thousands of customers with a subscription, or
of one-time payments, in one request and without events.

Creating 100,000 subscriptions through the API would take the better part of an hour (each one a
customer, a subscription, an invoice, a payment and their events); a reconciliation benchmark
only needs them to exist, listable like any other. The objects have the shapes the API gives,
carry the metadata the service writes (``project``, ``user_id``, ...), and no event, webhook or
invoice is made for them: as if they were created long ago, before the service listened.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from . import billing, charging
from .cards import card_for_number
from .errors import invalid
from .sandbox import Sandbox
from .shapes import billing as billing_shapes
from .shapes import catalog as catalog_shapes
from .shapes import customers as customer_shapes
from .shapes import payments as payment_shapes
from .store import JsonObject

MAX_COUNT = 200_000
DAY = 86400
SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due", "unpaid", "canceled")
PAYMENT_STATUSES = ("succeeded", "requires_payment_method", "processing", "canceled")
_SUBSCRIPTION_FIELDS = {
    "count",
    "price",
    "unit_amount",
    "currency",
    "interval",
    "quantity",
    "metadata",
    "user_prefix",
    "user_key",
    "start",
    "status",
    "cancel_at_period_end",
    "trial_days",
    "backdate_days",
}
_PAYMENT_FIELDS = {
    "count",
    "amount",
    "currency",
    "metadata",
    "user_prefix",
    "user_key",
    "start",
    "status",
    "customers",
    "description",
    "backdate_days",
}


@dataclass
class Owners:
    """Who each of the ``count`` objects belongs to, and when it was created."""

    metadata: dict[str, str]
    user_key: str
    users: list[str]
    created: list[int]

    def metadata_of(self, index: int) -> dict[str, str]:
        return {**self.metadata, self.user_key: self.users[index]}


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise invalid(f"Unknown fields: {sorted(unknown)}")


def _int(body: dict[str, Any], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise invalid(f"{name} must be an integer of at least {minimum}", name)
    if maximum is not None and value > maximum:
        raise invalid(f"{name} must be at most {maximum}", name)
    return value


def _str(body: dict[str, Any], name: str, default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise invalid(f"{name} must be a non-empty string", name)
    return value


def _owners(sb: Sandbox, body: dict[str, Any]) -> Owners:
    count = _int(body, "count", 0, 1, MAX_COUNT)
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise invalid("metadata must be an object of strings", "metadata")
    prefix = body.get("user_prefix", "user_")
    if not isinstance(prefix, str):
        raise invalid("user_prefix must be a string", "user_prefix")
    start = _int(body, "start", 0, 0)
    backdate = body.get("backdate_days", 0)
    if not isinstance(backdate, int | float) or isinstance(backdate, bool) or backdate < 0:
        raise invalid("backdate_days must be a number of days", "backdate_days")
    now = sb.store.now()
    span = int(backdate * DAY)
    # Oldest first, the last one "now": spread evenly over the span.
    created = [now - span + (span * i) // count for i in range(count)] if span else [now] * count
    return Owners(
        metadata=dict(metadata),
        user_key=_str(body, "user_key", "user_id"),
        users=[f"{prefix}{start + i}" for i in range(count)],
        created=created,
    )


def _price(sb: Sandbox, body: dict[str, Any], created: int) -> tuple[JsonObject, list[JsonObject]]:
    """The given recurring price, or a new product and price made for the batch."""
    store = sb.store
    if body.get("price") is not None:
        price = store.require(str(body["price"]), "price", "price")
        if price["type"] != "recurring" or not price["active"]:
            raise invalid(f"The price specified ({price['id']}) is not an active recurring price.", "price")
        return price, []
    interval = _str(body, "interval", "month")
    if interval not in ("day", "week", "month", "year"):
        raise invalid("interval must be one of day, week, month, year", "interval")
    product = catalog_shapes.product(store.new_id("prod", 14), created, "Bulk plan")
    price = catalog_shapes.price(
        store.new_id("price"),
        created,
        product["id"],
        _str(body, "currency", "usd").lower(),
        _int(body, "unit_amount", 1500, 0),
        catalog_shapes.recurring(interval, 1, None),
    )
    return price, [product, price]


def _customer(sb: Sandbox, created: int, user: str, metadata: dict[str, str]) -> JsonObject:
    store = sb.store
    customer = customer_shapes.customer(store.new_id("cus", 14), created, store.new_id("x", 8)[2:].upper())
    customer["email"] = f"{user}@example.com"
    customer["metadata"] = metadata
    return customer


def create_subscriptions(sb: Sandbox, body: dict[str, Any]) -> JsonObject:
    """``count`` customers, each with one subscription of ``price`` (or of a new price), metadata
    ``{**metadata, user_key: user_prefix + n}`` on both; the current period contains "now" (a
    back-dated subscription has renewed, without invoices, up to it)."""
    _check_fields(body, _SUBSCRIPTION_FIELDS)
    owners = _owners(sb, body)
    status = _str(body, "status", "active")
    if status not in SUBSCRIPTION_STATUSES:
        raise invalid(f"status must be one of {', '.join(SUBSCRIPTION_STATUSES)}", "status")
    quantity = _int(body, "quantity", 1, 1)
    trial_days = _int(body, "trial_days", 14, 1)
    cancel_at_period_end = body.get("cancel_at_period_end", False)
    if not isinstance(cancel_at_period_end, bool):
        raise invalid("cancel_at_period_end must be true or false", "cancel_at_period_end")
    store = sb.store
    now = store.now()
    price, new_objects = _price(sb, body, owners.created[0])
    # One copy shared by every item of the batch: nothing changes an item's price in place (a
    # re-price swaps in a fresh copy), and 100,000 copies would cost memory for nothing.
    item_price = copy.deepcopy(price)
    item_plan = catalog_shapes.plan_from_price(price)
    recurring = price["recurring"]
    periods: dict[int, tuple[int, int]] = {}

    def period_from(created: int) -> tuple[int, int]:
        if created not in periods:
            start = created
            end = billing.add_interval(start, recurring["interval"], recurring["interval_count"])
            while end <= now:
                start, end = end, billing.add_interval(end, recurring["interval"], recurring["interval_count"])
            periods[created] = (start, end)
        return periods[created]

    customers: list[str] = []
    subscriptions: list[str] = []
    for index, created in enumerate(owners.created):
        metadata = owners.metadata_of(index)
        customer = _customer(sb, created, owners.users[index], metadata)
        sub = billing_shapes.subscription(store.new_id("sub"), created, customer["id"], price["currency"])
        if status == "trialing":
            period = (created, created + trial_days * DAY)
            if period[1] <= now:
                raise invalid("A trial that ended before now: lower backdate_days or raise trial_days.", "trial_days")
            sub.update(trial_start=period[0], trial_end=period[1])
        else:
            period = period_from(created)
        item = billing_shapes.subscription_item(
            store.new_id("si", 14), created, sub["id"], item_price, item_plan, quantity, period
        )
        sub["items"]["data"] = [item]
        sub.update(metadata=dict(metadata), status=status)
        if status == "canceled":
            sub.update(
                canceled_at=now,
                ended_at=now,
                cancellation_details={"comment": None, "feedback": None, "reason": "cancellation_requested"},
            )
        elif cancel_at_period_end:
            sub.update(cancel_at_period_end=True, cancel_at=period[1], canceled_at=now)
        new_objects += [customer, sub]
        customers.append(customer["id"])
        subscriptions.append(sub["id"])
    store.add_many(new_objects)
    return {
        "price": price["id"],
        "subscriptions": subscriptions,
        "customers": customers,
        "users": owners.users,
    }


def create_payments(sb: Sandbox, body: dict[str, Any]) -> JsonObject:
    """``count`` one-time payment intents of ``amount`` (a charge each when ``succeeded``, paid with
    one 4242 card), metadata ``{**metadata, user_key: user_prefix + n}`` on the intent and its
    charge, and a customer each when ``customers`` is true."""
    _check_fields(body, _PAYMENT_FIELDS)
    owners = _owners(sb, body)
    amount = _int(body, "amount", 4900, 1)
    currency = _str(body, "currency", "usd").lower()
    status = _str(body, "status", "succeeded")
    if status not in PAYMENT_STATUSES:
        raise invalid(f"status must be one of {', '.join(PAYMENT_STATUSES)}", "status")
    with_customers = body.get("customers", False)
    if not isinstance(with_customers, bool):
        raise invalid("customers must be true or false", "customers")
    description = body.get("description")
    store = sb.store
    now = store.now()
    card = charging.create_card_payment_method(sb, card_for_number("4242424242424242"))
    new_objects: list[JsonObject] = []
    intents: list[str] = []
    charges: list[str | None] = []
    customers: list[str | None] = []
    for index, created in enumerate(owners.created):
        metadata = owners.metadata_of(index)
        customer = _customer(sb, created, owners.users[index], dict(metadata)) if with_customers else None
        pi = payment_shapes.payment_intent(store.new_id("pi"), created, amount, currency, store.new_id("s")[2:])
        pi.update(
            customer=customer["id"] if customer else None,
            metadata=dict(metadata),
            description=description,
            status=status,
        )
        charge = None
        if status == "succeeded":
            charge = payment_shapes.charge(store.new_id("ch"), created, amount, currency, card)
            charge.update(
                customer=pi["customer"], payment_intent=pi["id"], description=description, metadata=dict(metadata)
            )
            pi.update(amount_received=amount, latest_charge=charge["id"], payment_method=card["id"])
        elif status == "canceled":
            pi.update(canceled_at=now)
        new_objects += [obj for obj in (customer, pi, charge) if obj is not None]
        intents.append(pi["id"])
        charges.append(charge["id"] if charge else None)
        customers.append(customer["id"] if customer else None)
    store.add_many(new_objects)
    return {"payment_intents": intents, "charges": charges, "customers": customers, "users": owners.users}
