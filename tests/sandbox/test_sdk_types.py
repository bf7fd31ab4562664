"""Every object the sandbox returns in a full scenario matches the official SDK's types for the
pinned API version: no missing required field, no undeclared field, no wrong type, no enum value
outside the SDK's ``Literal``. Events are checked with their ``data.object``."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_sandbox.testing import SandboxProcess

from .conftest import Receiver, form_post, wait_for
from .sdk_types import Checker
from .test_shape_contract import stripe_examples

DAY = 86400


def _scenario(client: stripe.StripeClient, sandbox: SandboxProcess, receiver: Receiver) -> list[dict[str, Any]]:
    """Checkout in both modes paid on the hosted page, a renewal via the clock, a refund, a
    portal session, failed payments; answers every object as the SDK got it, as raw JSON."""
    seen: list[stripe.StripeObject] = []
    client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"]})
    product = client.v1.products.create(params={"name": "Pro", "metadata": {"feature": "pro"}})
    monthly = client.v1.prices.create(
        params={"product": product.id, "unit_amount": 1500, "currency": "usd", "recurring": {"interval": "month"}}
    )
    once = client.v1.prices.create(params={"product": product.id, "unit_amount": 4900, "currency": "usd"})
    seen += [product, monthly, once]

    sub_session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": monthly.id, "quantity": 1}],
            "success_url": "http://127.0.0.1:9/ok?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1:9/cancel",
            "client_reference_id": "user_1",
            "metadata": {"user": "user_1"},
            "subscription_data": {"metadata": {"user": "user_1"}},
        }
    )
    assert form_post(f"{sub_session.url}/pay", {"card_number": "4242424242424242", "email": "a@example.com"})[0] == 303
    pay_session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": once.id, "quantity": 1}],
            "success_url": "http://127.0.0.1:9/ok",
            "customer_creation": "always",
            "payment_intent_data": {"metadata": {"user": "user_1"}},
        }
    )
    assert form_post(f"{pay_session.url}/pay", {"card_number": "4242424242424242", "email": "b@example.com"})[0] == 303
    sub_session = client.v1.checkout.sessions.retrieve(sub_session.id, params={"expand": ["line_items"]})
    pay_session = client.v1.checkout.sessions.retrieve(pay_session.id)
    seen += [sub_session, pay_session, *client.v1.checkout.sessions.line_items.list(pay_session.id).data]

    sandbox.advance_clock(31 * DAY)  # renewal
    subscription = client.v1.subscriptions.retrieve(str(sub_session.subscription))
    customer = client.v1.customers.retrieve(str(sub_session.customer))
    seen += [subscription, customer, *client.v1.invoices.list(params={"customer": customer.id}).data]
    seen += client.v1.invoices.line_items.list(str(subscription.latest_invoice)).data

    pi = client.v1.payment_intents.retrieve(str(pay_session.payment_intent))
    refund = client.v1.refunds.create(params={"payment_intent": pi.id})
    seen += [pi, refund, client.v1.charges.retrieve(str(pi.latest_charge))]
    seen += [client.v1.billing_portal.sessions.create(params={"customer": customer.id, "return_url": "http://x/"})]

    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create(
            params={"amount": 700, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": True}
        )
    failed_pi = client.v1.payment_intents.list(params={"limit": 1}).data[0]
    seen += [failed_pi, client.v1.charges.retrieve(str(failed_pi.latest_charge))]
    # A failed renewal: the customer's card now declines.
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": "pm_card_chargeCustomerFail"}}
    )
    client.v1.subscriptions.update(subscription.id, params={"default_payment_method": ""})
    sandbox.advance_clock(31 * DAY)
    seen += [client.v1.subscriptions.retrieve(subscription.id), *client.v1.payment_methods.list().data]

    events = []
    for event in client.v1.events.list(params={"limit": 100}).auto_paging_iter():
        events.append(event)
    assert {"invoice.payment_failed", "charge.refunded", "checkout.session.completed"} <= {e.type for e in events}
    wait_for(lambda: len(receiver.events()) >= len(events))
    return [obj.to_dict(recursive=True) for obj in [*seen, *events]] + receiver.events()


def test_every_object_of_a_full_scenario_matches_the_sdk_types(client, sandbox, receiver) -> None:
    objects = _scenario(client, sandbox, receiver)
    checker = Checker(stripe_examples())
    for obj in objects:
        checker.check_object(obj)
        if obj["object"] == "event":
            data = obj["data"]["object"]
            checker.check_object(data, where=f"event[{obj['type']}].data.object({data['object']})")
    findings = sorted(checker.findings)
    assert findings == [], f"{len(findings)} findings against the SDK's types:\n  " + "\n  ".join(findings)


def test_the_checker_reports_what_it_should() -> None:
    # Guards the checker: a blind checker would pass every object.
    checker = Checker()
    checker.check_object({"object": "refund", "id": "re_1", "amount": "12", "colour": "red", "metadata": {}})
    checker.check_object({"object": "subscription", "status": "done", "items": {"object": "list", "data": [7]}})
    text = "\n".join(sorted(checker.findings))
    assert "refund.amount: str '12' does not fit" in text
    assert "refund.colour: not a field of Refund" in text
    assert "refund.created: missing" in text
    assert "subscription.status: 'done' is not one of" in text
    assert "subscription.items.data[0]: int 7 does not fit" in text
