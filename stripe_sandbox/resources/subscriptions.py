"""Subscriptions and subscription items."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import billing, charging
from ..api import ApiRequest, matching, route
from ..errors import invalid
from ..params import get_bool, get_dict, get_int, get_list, get_str, merge_metadata
from ..render import list_page, paginate
from ..sandbox import Sandbox
from ..store import JsonObject

PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete")
STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
ENDED = ("canceled", "incomplete_expired")


def item_specs(sb: Sandbox, raw_items: list[Any]) -> list[billing.ItemSpec]:
    specs = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise invalid("Invalid items", f"items[{index}]")
        price_id = get_str(raw, "price", required=True)
        assert price_id is not None
        price = sb.store.require(price_id, "price", f"items[{index}][price]")
        quantity = get_int(raw, "quantity", minimum=1)
        specs.append(
            billing.ItemSpec(price, 1 if quantity is None else quantity, merge_metadata({}, raw.get("metadata", {})))
        )
    return specs


@route("POST", "/v1/subscriptions")
def create_subscription(sb: Sandbox, req: ApiRequest) -> JsonObject:
    params = req.params
    customer_id = get_str(params, "customer", required=True)
    assert customer_id is not None
    customer = sb.store.require(customer_id, "customer", "customer")
    specs = item_specs(sb, get_list(params, "items"))
    behavior = get_str(params, "payment_behavior") or "allow_incomplete"
    if behavior not in PAYMENT_BEHAVIORS:
        raise invalid(f"Invalid payment_behavior: {behavior}", "payment_behavior")
    pm_id = get_str(params, "default_payment_method")
    pm = charging.resolve_payment_method(sb, pm_id, "default_payment_method") if pm_id else None
    if pm is not None:
        charging.attach(sb, pm, customer) if pm["customer"] is None else None
        if pm["customer"] != customer["id"]:
            raise invalid("The payment method must be attached to the customer.", "default_payment_method")
    trial_days = get_int(params, "trial_period_days", minimum=0)
    trial_end = get_str(params, "trial_end")
    if trial_end is not None and trial_end != "now":
        trial_days = max(1, (int(trial_end) - sb.store.now() + 86399) // 86400)
    return billing.create_subscription(
        sb,
        customer,
        specs,
        default_payment_method=pm,
        trial_period_days=trial_days or None,
        metadata=merge_metadata({}, params.get("metadata", {})),
        cancel_at_period_end=bool(get_bool(params, "cancel_at_period_end")),
        payment_behavior=behavior,
        description=get_str(params, "description"),
    )


@route("GET", "/v1/subscriptions/{id}")
def get_subscription(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "subscription")


@route("POST", "/v1/subscriptions/{id}")
def update_subscription(sb: Sandbox, req: ApiRequest) -> JsonObject:
    sub = sb.store.require(req.arg("id"), "subscription")
    params = req.params
    changes: dict[str, Any] = {}
    if "metadata" in params:
        changes["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
    if "description" in params:
        changes["description"] = get_str(params, "description")
    if sub["status"] == "canceled" and set(params) - {"metadata", "description", "cancellation_details", "expand"}:
        raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
    if "cancel_at_period_end" in params:
        changes.update(billing.set_cancel_at_period_end(sb, sub, bool(get_bool(params, "cancel_at_period_end"))))
    if "default_payment_method" in params:
        pm_id = get_str(params, "default_payment_method")
        pm = charging.resolve_payment_method(sb, pm_id, "default_payment_method") if pm_id else None
        if pm is not None and pm["customer"] is None:
            customer = sb.store.require(sub["customer"], "customer")
            charging.attach(sb, pm, customer)
        changes["default_payment_method"] = pm["id"] if pm else None
    if "items" in params:
        updates = []
        for index, raw in enumerate(get_list(params, "items")):
            if not isinstance(raw, dict):
                raise invalid("Invalid items", f"items[{index}]")
            price_id = get_str(raw, "price")
            updates.append(
                {
                    "id": get_str(raw, "id"),
                    "price": sb.store.require(price_id, "price", f"items[{index}][price]") if price_id else None,
                    "quantity": get_int(raw, "quantity", minimum=0),
                    "deleted": get_bool(raw, "deleted"),
                }
            )
        changes["items"] = billing.replace_items(sb, sub, updates)
    cancellation = get_dict(params, "cancellation_details")
    if cancellation:
        changes["cancellation_details"] = {**sub["cancellation_details"], **cancellation}
    sb.update(sub, changes, "customer.subscription.updated")
    return sub


@route("DELETE", "/v1/subscriptions/{id}")
def cancel_subscription(sb: Sandbox, req: ApiRequest) -> JsonObject:
    sub = sb.store.require(req.arg("id"), "subscription")
    return billing.cancel_subscription(sb, sub)


def _status_filter(status: str | None) -> Callable[[JsonObject], bool] | None:
    """Stripe's ``status``: unset lists every subscription that has not ended, ``ended`` those
    that have, ``all`` every one, anything else that one status."""
    if status is None:
        return lambda sub: sub["status"] not in ENDED
    if status == "ended":
        return lambda sub: sub["status"] in ENDED
    if status == "all":
        return None
    if status not in STATUSES:
        raise invalid(f"Invalid status: must be one of {', '.join(STATUSES)}", "status")
    return lambda sub: sub["status"] == status


@route("GET", "/v1/subscriptions")
def list_subscriptions(sb: Sandbox, req: ApiRequest) -> JsonObject:
    params = req.params
    checks = []
    status_check = _status_filter(get_str(params, "status"))
    if status_check is not None:
        checks.append(status_check)
    price = get_str(params, "price")
    if price is not None:
        checks.append(lambda sub: any(i["price"]["id"] == price for i in sub["items"]["data"]))
    return list_page(sb.store, "subscription", params, "/v1/subscriptions", matching(params, ["customer"], *checks))


@route("GET", "/v1/subscription_items")
def list_subscription_items(sb: Sandbox, req: ApiRequest) -> JsonObject:
    sub_id = get_str(req.params, "subscription", required=True)
    assert sub_id is not None
    sub = sb.store.require(sub_id, "subscription", "subscription")
    return paginate(list(sub["items"]["data"]), req.params, f"/v1/subscription_items?subscription={sub_id}")
