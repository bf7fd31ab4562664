"""Hosted checkout and portal pages, driven by plain form POSTs as a browser would."""

from __future__ import annotations

import pytest
import stripe

from .conftest import form_post, http_get

SUCCESS = "http://127.0.0.1:9/done?session={CHECKOUT_SESSION_ID}"
CANCEL = "http://127.0.0.1:9/cancelled"


def _subscription_session(client, price, **extra):
    return client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 2}],
            "success_url": SUCCESS,
            "cancel_url": CANCEL,
            "client_reference_id": "user-42",
            "metadata": {"order": "o-1"},
            "subscription_data": {"metadata": {"project": "p-7"}},
            **extra,
        }
    )


def test_subscription_checkout_creates_what_stripe_creates(client, sandbox, monthly_price) -> None:
    session = _subscription_session(client, monthly_price, customer_email="buyer@example.com")
    assert session.status == "open"
    assert session.url.startswith(sandbox.base_url + "/checkout/cs_test_")
    status, page = http_get(session.url)
    assert status == 200
    assert "Pro plan" in page
    assert "30.00 USD" in page
    status, _, location = form_post(session.url + "/pay", {"card_number": "4242424242424242", "name": "Buyer"})
    assert status == 303
    assert location == f"http://127.0.0.1:9/done?session={session.id}"
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription", "line_items"]})
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.client_reference_id == "user-42"
    assert done.metadata.to_dict() == {"order": "o-1"}
    sub = done.subscription
    assert sub.status == "active"
    assert sub.metadata.to_dict() == {"project": "p-7"}
    assert sub["items"].data[0].quantity == 2
    assert done.line_items.data[0].amount_total == 3000
    customer = client.v1.customers.retrieve(done.customer)
    assert customer.email == "buyer@example.com"
    invoice = client.v1.invoices.retrieve(done.invoice)
    assert invoice.status == "paid"
    assert invoice.amount_paid == 3000
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert types[0] == "checkout.session.completed"
    for expected in ("customer.created", "customer.subscription.created", "invoice.paid", "charge.succeeded"):
        assert expected in types
    again, _, _ = form_post(session.url + "/pay", {"card_number": "4242424242424242"})
    assert again == 409


def test_payment_checkout_with_price_data(client) -> None:
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 700, "product_data": {"name": "Credits"}},
                    "quantity": 3,
                }
            ],
            "payment_intent_data": {"metadata": {"credits": "3"}},
            "success_url": SUCCESS,
        }
    )
    assert session.amount_total == 2100
    items = client.v1.checkout.sessions.line_items.list(session.id)
    assert [(i.description, i.quantity) for i in items.data] == [("Credits", 3)]
    status, _, _ = form_post(session.url + "/pay", {"card_number": "4242424242424242", "email": "g@example.com"})
    assert status == 303
    done = client.v1.checkout.sessions.retrieve(session.id)
    pi = client.v1.payment_intents.retrieve(done.payment_intent)
    assert pi.status == "succeeded"
    assert pi.amount == 2100
    assert pi.metadata.to_dict() == {"credits": "3"}
    assert done.customer is None
    assert done.customer_details.email == "g@example.com"


def test_declined_card_keeps_session_open_and_creates_no_subscription(client, monthly_price) -> None:
    session = _subscription_session(client, monthly_price)
    status, page, location = form_post(session.url + "/pay", {"card_number": "4000000000009995"})
    assert status == 402
    assert location is None
    assert "insufficient funds" in page
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []
    status, _, _ = form_post(session.url + "/pay", {"card_number": "4242424242424242"})
    assert status == 303


def test_cancel_redirects_and_expire(client, monthly_price) -> None:
    session = _subscription_session(client, monthly_price)
    status, _, location = form_post(session.url + "/cancel", {})
    assert (status, location) == (303, CANCEL)
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    assert client.v1.events.list(params={"type": "checkout.session.expired"}).data[0].data.object.id == session.id
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)
    assert [s.id for s in client.v1.checkout.sessions.list(params={"status": "expired"}).data] == [session.id]


def test_trial_checkout(client, monthly_price) -> None:
    session = _subscription_session(client, monthly_price, subscription_data={"trial_period_days": 14})
    form_post(session.url + "/pay", {"card_number": "4242424242424242"})
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert done.payment_status == "no_payment_required"
    assert done.subscription.status == "trialing"
    assert done.subscription.trial_end - done.subscription.trial_start == 14 * 86400


def test_portal_cancel_at_period_end_switch_and_cancel_now(client, paying_customer, monthly_price) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )
    other = client.v1.prices.create(
        params={
            "product": monthly_price.product,
            "unit_amount": 2500,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": paying_customer.id, "return_url": "http://127.0.0.1:9/account"}
    )
    status, page = http_get(portal.url)
    assert status == 200
    assert sub.id in page
    assert "http://127.0.0.1:9/account" in page
    base = f"{portal.url}/subscriptions/{sub.id}"
    assert form_post(base + "/cancel", {"when": "period_end"})[0] == 303
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is True
    assert form_post(base + "/switch", {"price": other.id})[0] == 303
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == other.id
    assert form_post(base + "/cancel", {"when": "now"})[0] == 303
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    types = [e.type for e in client.v1.events.list().data]
    assert types[0] == "customer.subscription.deleted"
    assert types.count("customer.subscription.updated") >= 3
