"""The parameters each ``/v1`` route accepts; anything else is Stripe's 400 ``parameter_unknown``.

Stripe refuses a parameter it does not know, so a sandbox that ignored one would let the service
send a request that real Stripe rejects. Each route lists what it implements, written as form
keys: ``a[b]`` a field of an object, ``a[]`` a list (``a[][b]`` a list of objects), ``a[*]`` a
free-form string map (``metadata``). ``expand[]`` is accepted wherever Stripe takes it.

Every name here exists in the official SDK's params for the pinned API version:
``tests/sandbox/test_accepted_params.py`` reads the SDK's TypedDicts and checks it, so this list
can only be a subset of what Stripe accepts. Parameters Stripe knows but the sandbox does not
emulate are refused too (see docs/sandbox.md), which is stricter than Stripe but never lenient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import StripeError

_PART = re.compile(r"\[([^\]]*)\]")


@dataclass
class Node:
    children: dict[str, Node] = field(default_factory=dict)
    item: Node | None = None  # the element of a list
    free: bool = False  # any key, string values (metadata)


def build(keys: tuple[str, ...], *, expandable: bool = True) -> Node:
    root = Node()
    for key in (*keys, *(("expand[]",) if expandable else ())):
        head, _, rest = key.partition("[")
        node = root.children.setdefault(head, Node())
        for part in _PART.findall("[" + rest) if rest else []:
            if part == "":
                node.item = node.item or Node()
                node = node.item
            elif part == "*":
                node.free = True
            else:
                node = node.children.setdefault(part, Node())
    return root


def unknown(path: str) -> StripeError:
    return StripeError(400, f"Received unknown parameter: {path}", code="parameter_unknown", param=path)


def check(params: dict[str, Any], spec: Node) -> None:
    """Raise ``parameter_unknown`` for the first parameter ``spec`` does not accept."""
    for name, value in params.items():
        child = spec.children.get(name)
        if child is None:
            raise unknown(name)
        _check_value(value, child, name)


def _check_value(value: Any, node: Node, path: str) -> None:
    # A string fits every node: ``""`` unsets an object at Stripe, and handlers convert scalars
    # (and refuse a scalar where they need an object) with the right message.
    if isinstance(value, str) or node.free:
        return
    if isinstance(value, list):
        for index, element in enumerate(value):
            if node.item is None:
                raise unknown(f"{path}[{index}]")
            _check_value(element, node.item, f"{path}[{index}]")
        return
    for key, element in value.items():
        if node.item is not None and key.isdigit():  # a sparse list arrives as a dict
            _check_value(element, node.item, f"{path}[{key}]")
            continue
        child = node.children.get(key)
        if child is None:
            raise unknown(f"{path}[{key}]")
        _check_value(element, child, f"{path}[{key}]")


def takes_expand(method: str, path: str) -> bool:
    """A deletion answers a stub with nothing to expand; cancelling a subscription is the DELETE
    that answers a full object."""
    return method != "DELETE" or path == "/v1/subscriptions/{id}"


LIST = ("limit", "starting_after", "ending_before")
CREATED = ("created", "created[gt]", "created[gte]", "created[lt]", "created[lte]")
NONE: tuple[str, ...] = ()
META = ("metadata[*]",)

_PRODUCT_FIELDS = (
    "active",
    "description",
    "images[]",
    *META,
    "name",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
)
_RECURRING = ("interval", "interval_count")
_PRICE_DATA = (
    "currency",
    "unit_amount",
    "tax_behavior",
    *(f"recurring[{name}]" for name in _RECURRING),
)
_CUSTOMER_FIELDS = (
    "email",
    "name",
    "description",
    "phone",
    *META,
    "invoice_settings[default_payment_method]",
)


def _prefixed(prefix: str, names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``_prefixed("a[]", ("b", "c[d]"))`` -> ``("a[][b]", "a[][c][d]")``."""
    return tuple(f"{prefix}[{head}]{'[' + rest if rest else ''}" for head, _, rest in (n.partition("[") for n in names))


ACCEPTED: dict[tuple[str, str], tuple[str, ...]] = {
    # --- catalog
    ("POST", "/v1/products"): (
        "id",
        *_PRODUCT_FIELDS,
        *_prefixed("default_price_data", [*_PRICE_DATA, *META]),
    ),
    ("GET", "/v1/products/{id}"): NONE,
    ("POST", "/v1/products/{id}"): (*_PRODUCT_FIELDS, "default_price"),
    ("DELETE", "/v1/products/{id}"): NONE,
    ("GET", "/v1/products"): (*LIST, *CREATED, "active", "ids[]", "shippable", "url"),
    ("GET", "/v1/products/{id}/features"): LIST,
    ("POST", "/v1/prices"): (
        *_PRICE_DATA,
        "recurring[trial_period_days]",
        "product",
        *_prefixed("product_data", ["name", "active", *META, "statement_descriptor", "tax_code", "unit_label"]),
        "lookup_key",
        "transfer_lookup_key",
        "nickname",
        "active",
        *META,
    ),
    ("GET", "/v1/prices/{id}"): NONE,
    ("POST", "/v1/prices/{id}"): ("active", "nickname", *META, "lookup_key", "transfer_lookup_key"),
    ("GET", "/v1/prices"): (
        *LIST,
        *CREATED,
        "active",
        "product",
        "type",
        "currency",
        "lookup_keys[]",
        "recurring[interval]",
    ),
    # --- customers and payment methods
    ("POST", "/v1/customers"): (*_CUSTOMER_FIELDS, "payment_method"),
    ("GET", "/v1/customers/{id}"): NONE,
    ("POST", "/v1/customers/{id}"): _CUSTOMER_FIELDS,
    ("DELETE", "/v1/customers/{id}"): NONE,
    ("GET", "/v1/customers"): (*LIST, *CREATED, "email"),
    ("POST", "/v1/payment_methods"): (
        "type",
        "card[number]",
        "card[exp_month]",
        "card[exp_year]",
        "card[token]",
        *META,
    ),
    ("GET", "/v1/payment_methods/{id}"): NONE,
    ("POST", "/v1/payment_methods/{id}"): META,
    ("POST", "/v1/payment_methods/{id}/attach"): ("customer",),
    ("POST", "/v1/payment_methods/{id}/detach"): NONE,
    ("GET", "/v1/payment_methods"): (*LIST, "customer", "type"),
    ("GET", "/v1/customers/{id}/payment_methods"): (*LIST, "type"),
    ("GET", "/v1/customers/{id}/sources"): (*LIST, "object"),
    ("GET", "/v1/customers/{id}/tax_ids"): LIST,
    # --- subscriptions
    ("POST", "/v1/subscriptions"): (
        "customer",
        *_prefixed("items[]", ["price", "quantity", *META]),
        "payment_behavior",
        "default_payment_method",
        "trial_period_days",
        "trial_end",
        *META,
        "cancel_at_period_end",
        "description",
    ),
    ("GET", "/v1/subscriptions/{id}"): NONE,
    ("POST", "/v1/subscriptions/{id}"): (
        *META,
        "description",
        "cancel_at_period_end",
        "default_payment_method",
        *_prefixed("items[]", ["id", "price", "quantity", "deleted", *META]),
        "cancellation_details[comment]",
        "cancellation_details[feedback]",
    ),
    ("DELETE", "/v1/subscriptions/{id}"): (
        "cancellation_details[comment]",
        "cancellation_details[feedback]",
    ),
    ("GET", "/v1/subscriptions"): (*LIST, *CREATED, "customer", "status", "price"),
    ("GET", "/v1/subscription_items"): (*LIST, "subscription"),
    # --- payments
    ("POST", "/v1/payment_intents"): (
        "amount",
        "currency",
        "customer",
        *META,
        "description",
        "payment_method",
        "confirm",
    ),
    ("GET", "/v1/payment_intents/{id}"): NONE,
    ("POST", "/v1/payment_intents/{id}"): (*META, "description"),
    ("POST", "/v1/payment_intents/{id}/confirm"): ("payment_method",),
    ("POST", "/v1/payment_intents/{id}/cancel"): ("cancellation_reason",),
    ("GET", "/v1/payment_intents"): (*LIST, *CREATED, "customer"),
    ("GET", "/v1/charges/{id}"): NONE,
    ("POST", "/v1/charges/{id}"): (*META, "description"),
    ("GET", "/v1/charges"): (*LIST, *CREATED, "customer", "payment_intent"),
    ("POST", "/v1/refunds"): ("charge", "payment_intent", "amount", "reason", *META),
    ("GET", "/v1/refunds/{id}"): NONE,
    ("POST", "/v1/refunds/{id}"): META,
    ("GET", "/v1/refunds"): (*LIST, *CREATED, "charge", "payment_intent"),
    ("GET", "/v1/charges/{id}/refunds"): LIST,
    ("GET", "/v1/invoices/{id}"): NONE,
    ("POST", "/v1/invoices/{id}"): (*META, "description"),
    ("POST", "/v1/invoices/{id}/pay"): ("payment_method",),
    ("GET", "/v1/invoices"): (*LIST, *CREATED, "customer", "subscription", "status"),
    ("GET", "/v1/invoices/{id}/lines"): LIST,
    # --- checkout and portal
    ("POST", "/v1/checkout/sessions"): (
        "mode",
        "success_url",
        "cancel_url",
        *_prefixed(
            "line_items[]",
            [
                "price",
                "quantity",
                *_prefixed(
                    "price_data",
                    [
                        *_PRICE_DATA,
                        "product",
                        *_prefixed("product_data", ["name", "description", "images[]", *META]),
                    ],
                ),
            ],
        ),
        "customer",
        "customer_email",
        "customer_creation",
        "client_reference_id",
        *META,
        "expires_at",
        "after_expiration[recovery][enabled]",
        "after_expiration[recovery][allow_promotion_codes]",
        "locale",
        "ui_mode",
        *_prefixed("subscription_data", [*META, "trial_period_days", "description"]),
        *_prefixed("payment_intent_data", [*META, "description"]),
    ),
    ("GET", "/v1/checkout/sessions/{id}"): NONE,
    ("POST", "/v1/checkout/sessions/{id}"): META,
    ("POST", "/v1/checkout/sessions/{id}/expire"): NONE,
    ("GET", "/v1/checkout/sessions"): (
        *LIST,
        *CREATED,
        "customer",
        "status",
        "payment_intent",
        "subscription",
    ),
    ("GET", "/v1/checkout/sessions/{id}/line_items"): LIST,
    ("POST", "/v1/billing_portal/sessions"): ("customer", "return_url"),
    # --- platform
    ("GET", "/v1/account"): NONE,
    ("GET", "/v1/accounts/{id}"): NONE,
    ("GET", "/v1/accounts"): (*LIST, *CREATED),
    ("POST", "/v1/webhook_endpoints"): ("url", "enabled_events[]", "description", "api_version", *META),
    ("GET", "/v1/webhook_endpoints/{id}"): NONE,
    ("POST", "/v1/webhook_endpoints/{id}"): ("url", "enabled_events[]", "description", *META, "disabled"),
    ("DELETE", "/v1/webhook_endpoints/{id}"): NONE,
    ("GET", "/v1/webhook_endpoints"): LIST,
    ("GET", "/v1/events/{id}"): NONE,
    ("GET", "/v1/events"): (*LIST, *CREATED, "type", "types[]", "delivery_success"),
    ("POST", "/v1/test_helpers/test_clocks"): ("frozen_time", "name"),
    ("GET", "/v1/test_helpers/test_clocks/{id}"): NONE,
    ("GET", "/v1/test_helpers/test_clocks"): LIST,
    ("DELETE", "/v1/test_helpers/test_clocks/{id}"): NONE,
    ("POST", "/v1/test_helpers/test_clocks/{id}/advance"): ("frozen_time",),
}


def spec_for(method: str, path: str) -> Node:
    """The accepted-parameter tree of a route; a route without an entry fails at start-up."""
    return build(ACCEPTED[(method, path)], expandable=takes_expand(method, path))
