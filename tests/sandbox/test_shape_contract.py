"""Every object the sandbox serves carries the attributes its SDK class declares, and the
top-level keys of Stripe's own example object (when ../shared/stripe/fixtures3.json exists)."""

from __future__ import annotations

import json
import os
import types
import typing
from pathlib import Path

import pytest
import stripe

from .conftest import form_post

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "stripe" / "fixtures3.json"


def stripe_examples() -> dict[str, dict]:
    """Stripe's example objects by ``object`` name; outside CI a fresh clone may lack them (skip),
    in CI they are always there (a missing file fails)."""
    if not FIXTURES.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{FIXTURES} is missing; CI always provides it")
        pytest.skip("../shared/stripe/fixtures3.json is not available")
    resources: dict[str, dict] = json.loads(FIXTURES.read_text())["resources"]
    return resources


# Attributes Stripe leaves out unless asked (``expand``/includable) or that only exist on
# some objects (deleted stubs, connected accounts, other payment-method types).
NOT_DEFAULT = {
    "*": {"OBJECT_NAME", "deleted"},
    # Stripe leaves these out of a card refund that succeeded and of a charge without Connect
    # or Radar options, and out of an invoice no usage threshold created.
    "refund": {"description", "failure_balance_transaction", "failure_reason", "instructions_email", "next_action"},
    "charge": {"transfer", "radar_options"},
    "invoice": {"threshold_reason"},
    "customer": {"cash_balance", "invoice_credit_balance", "sources", "subscriptions", "tax", "tax_ids"},
    "checkout.session": {"line_items"},
    "price": {"currency_options", "tiers"},
    "webhook_endpoint": {"secret"},
    "event": {"account"},
}

SDK_CLASSES: dict[str, type[stripe.StripeObject]] = {
    "account": stripe.Account,
    "product": stripe.Product,
    "price": stripe.Price,
    "customer": stripe.Customer,
    "payment_method": stripe.PaymentMethod,
    "subscription": stripe.Subscription,
    "subscription_item": stripe.SubscriptionItem,
    "invoice": stripe.Invoice,
    "line_item": stripe.InvoiceLineItem,
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "checkout.session": stripe.checkout.Session,
    "item": stripe.LineItem,
    "billing_portal.session": stripe.billing_portal.Session,
    "webhook_endpoint": stripe.WebhookEndpoint,
    "event": stripe.Event,
    "test_helpers.test_clock": stripe.test_helpers.TestClock,
}


def _nullable(annotation: object) -> bool:
    if isinstance(annotation, typing._UnionGenericAlias | types.UnionType):  # type: ignore[attr-defined]
        return type(None) in typing.get_args(annotation)
    return "Optional" in str(annotation) or "None" in str(annotation)


def _payment_method_type_fields() -> set[str]:
    return {k for k in stripe.PaymentMethod.__annotations__ if k not in {"card"}} - {
        "allow_redisplay",
        "billing_details",
        "created",
        "customer",
        "customer_account",
        "id",
        "livemode",
        "metadata",
        "object",
        "type",
        "radar_options",
    }


def _everything(client, sandbox) -> dict[str, dict]:
    """Create one of everything and fetch each back as raw JSON dicts."""
    product = client.v1.products.create(params={"name": "Shape"})
    price = client.v1.prices.create(
        params={"product": product.id, "unit_amount": 100, "currency": "usd", "recurring": {"interval": "month"}}
    )
    customer = client.v1.customers.create(params={"email": "shape@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}], "default_payment_method": pm.id}
    )
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    pi = client.v1.payment_intents.create(
        params={"amount": 300, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    session = client.v1.checkout.sessions.create(
        params={"mode": "subscription", "line_items": [{"price": price.id}], "success_url": "http://127.0.0.1:9/"}
    )
    form_post(session.url + "/pay", {"card_number": "4242424242424242"})
    portal = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    endpoint = client.v1.webhook_endpoints.create(params={"url": "http://127.0.0.1:9/", "enabled_events": ["*"]})
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": sandbox.now()})
    fetched = {
        "account": client.v1.accounts.retrieve_current(),
        "product": client.v1.products.retrieve(product.id),
        "price": client.v1.prices.retrieve(price.id),
        "customer": client.v1.customers.retrieve(customer.id),
        "payment_method": client.v1.payment_methods.retrieve(pm.id),
        "subscription": client.v1.subscriptions.retrieve(sub.id),
        "subscription_item": client.v1.subscriptions.retrieve(sub.id)["items"].data[0],
        "invoice": invoice,
        "line_item": client.v1.invoices.line_items.list(invoice.id).data[0],
        "payment_intent": client.v1.payment_intents.retrieve(pi.id),
        "charge": client.v1.charges.retrieve(pi.latest_charge),
        "refund": client.v1.refunds.retrieve(refund.id),
        "checkout.session": client.v1.checkout.sessions.retrieve(session.id),
        "item": client.v1.checkout.sessions.line_items.list(session.id).data[0],
        "billing_portal.session": portal,
        "webhook_endpoint": client.v1.webhook_endpoints.retrieve(endpoint.id),
        "event": client.v1.events.list().data[0],
        "test_helpers.test_clock": client.v1.test_helpers.test_clocks.retrieve(clock.id),
    }
    return {name: obj.to_dict(recursive=True) for name, obj in fetched.items()}


@pytest.fixture
def served(client, sandbox) -> dict[str, dict]:
    return _everything(client, sandbox)


@pytest.mark.parametrize("resource", sorted(SDK_CLASSES))
def test_objects_carry_every_sdk_attribute(served, resource) -> None:
    cls = SDK_CLASSES[resource]
    raw = served[resource]
    obj = cls.construct_from(raw, "sk_test_x")
    assert obj["object"] == resource
    skip = NOT_DEFAULT["*"] | NOT_DEFAULT.get(resource, set())
    if resource == "payment_method":
        skip |= _payment_method_type_fields()
    missing, wrongly_null = [], []
    for name, annotation in cls.__annotations__.items():
        if name in skip:
            continue
        if name not in raw:
            missing.append(name)
        elif raw[name] is None and not _nullable(annotation):
            wrongly_null.append(name)
    assert missing == [], f"{resource} lacks {missing}"
    assert wrongly_null == [], f"{resource} has null non-optional {wrongly_null}"


@pytest.mark.parametrize("resource", sorted(SDK_CLASSES))
def test_top_level_keys_match_stripe_example(served, resource) -> None:
    example = stripe_examples()[resource]
    missing = sorted(set(example) - set(served[resource]))
    assert missing == [], f"{resource} lacks Stripe's default fields {missing}"
