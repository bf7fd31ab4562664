"""Resources through the official SDK: catalog, customers, cards, payments, refunds, endpoints."""

from __future__ import annotations

import pytest
import stripe


def test_product_and_price_lifecycle(client) -> None:
    product = client.v1.products.create(params={"name": "Team", "metadata": {"tier": "team"}})
    one_time = client.v1.prices.create(params={"product": product.id, "unit_amount": 5000, "currency": "eur"})
    assert one_time.type == "one_time"
    assert one_time.recurring is None
    yearly = client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": 50000,
            "currency": "eur",
            "recurring": {"interval": "year"},
            "lookup_key": "team_yearly",
        }
    )
    assert yearly.recurring.interval == "year"
    found = client.v1.prices.list(params={"lookup_keys": ["team_yearly"]})
    assert [p.id for p in found.data] == [yearly.id]
    client.v1.prices.update(one_time.id, params={"active": False})
    active = client.v1.prices.list(params={"active": True, "product": product.id})
    assert [p.id for p in active.data] == [yearly.id]
    renamed = client.v1.products.update(product.id, params={"name": "Team+"})
    assert renamed.name == "Team+"
    types = [e.type for e in client.v1.events.list().data]
    assert types.count("price.updated") == 1
    assert "product.updated" in types


def test_lookup_key_is_unique_unless_transferred(client, monthly_price) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create(
            params={"product": monthly_price.product, "unit_amount": 1, "currency": "usd", "lookup_key": "pro_monthly"}
        )
    moved = client.v1.prices.create(
        params={
            "product": monthly_price.product,
            "unit_amount": 2000,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
            "transfer_lookup_key": True,
        }
    )
    assert client.v1.prices.retrieve(monthly_price.id).lookup_key is None
    assert moved.lookup_key == "pro_monthly"


def test_product_delete(client) -> None:
    product = client.v1.products.create(params={"name": "Gone"})
    deleted = client.v1.products.delete(product.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.retrieve(product.id)


def test_customer_crud(client) -> None:
    customer = client.v1.customers.create(params={"email": "c@example.com", "name": "C"})
    assert client.v1.customers.retrieve(customer.id).email == "c@example.com"
    assert [c.id for c in client.v1.customers.list(params={"email": "c@example.com"}).data] == [customer.id]
    deleted = client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    assert client.v1.customers.list().data == []
    assert "customer.deleted" in [e.type for e in client.v1.events.list().data]


@pytest.mark.parametrize(
    ("card", "outcome"),
    [
        ("4242424242424242", None),
        ("4000000000000341", "generic_decline"),
        ("4000000000009995", "insufficient_funds"),
    ],
)
def test_test_cards_attach_then_charge(client, card, outcome) -> None:
    customer = client.v1.customers.create()
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": card, "exp_month": 1, "exp_year": 2040}}
    )
    attached = client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    assert attached.customer == customer.id
    assert attached.card.last4 == card[-4:]
    params = {"amount": 999, "currency": "usd", "customer": customer.id, "payment_method": pm.id, "confirm": True}
    if outcome is None:
        pi = client.v1.payment_intents.create(params=params)
        assert pi.status == "succeeded"
        assert pi.amount_received == 999
        charge = client.v1.charges.retrieve(pi.latest_charge)
        assert charge.paid
        assert charge.amount == 999
    else:
        with pytest.raises(stripe.CardError) as info:
            client.v1.payment_intents.create(params=params)
        assert info.value.http_status == 402
        assert info.value.code == "card_declined"
        assert info.value.error is not None
        assert info.value.error.decline_code == outcome
        types = [e.type for e in client.v1.events.list().data]
        assert "payment_intent.payment_failed" in types
        assert "charge.failed" in types


@pytest.mark.parametrize(
    ("token", "declines"),
    [
        ("pm_card_visa", False),
        ("pm_card_chargeCustomerFail", True),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", True),
    ],
)
def test_test_tokens(client, token, declines) -> None:
    customer = client.v1.customers.create()
    pm = client.v1.payment_methods.attach(token, params={"customer": customer.id})
    assert pm.id.startswith("pm_")
    assert pm.id != token
    pi = client.v1.payment_intents.create(params={"amount": 100, "currency": "usd", "customer": customer.id})
    if declines:
        with pytest.raises(stripe.CardError):
            client.v1.payment_intents.confirm(pi.id, params={"payment_method": pm.id})
        assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    else:
        assert client.v1.payment_intents.confirm(pi.id, params={"payment_method": pm.id}).status == "succeeded"


def test_incorrect_card_number_is_card_error(client) -> None:
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_methods.create(params={"type": "card", "card": {"number": "4242424242424241"}})
    assert info.value.code == "incorrect_number"


def test_partial_then_full_refund(client) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    first = client.v1.refunds.create(params={"charge": pi.latest_charge, "amount": 300})
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (300, False)
    client.v1.refunds.create(params={"payment_intent": pi.id})
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (1000, True)
    assert client.v1.refunds.retrieve(first.id).amount == 300
    assert len(client.v1.refunds.list(params={"charge": charge.id}).data) == 2
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"charge": charge.id, "amount": 1})
    refunded_events = client.v1.events.list(params={"type": "charge.refunded"}).data
    assert [e.data.object.amount_refunded for e in refunded_events] == [1000, 300]
    assert refunded_events[1].data.previous_attributes.amount_refunded == 0


def test_webhook_endpoint_crud(client) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["invoice.paid", "customer.*"]}
    )
    assert endpoint.secret.startswith("whsec_")
    fetched = client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert "secret" not in fetched
    updated = client.v1.webhook_endpoints.update(endpoint.id, params={"enabled_events": ["*"], "disabled": True})
    assert updated.enabled_events == ["*"]
    assert updated.status == "disabled"
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [endpoint.id]
    assert client.v1.webhook_endpoints.delete(endpoint.id).deleted is True
    assert client.v1.webhook_endpoints.list().data == []


def test_account(client) -> None:
    account = client.v1.accounts.retrieve_current()
    assert account.id.startswith("acct_")
    assert account.charges_enabled is True


def test_portal_session(client, sandbox) -> None:
    customer = client.v1.customers.create()
    session = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "http://127.0.0.1:9/account"}
    )
    assert session.url.startswith(sandbox.base_url + "/portal/")
    assert session.return_url == "http://127.0.0.1:9/account"


def test_subscription_items_and_invoices(client, paying_customer, monthly_price) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id, "quantity": 3}]}
    )
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert item.quantity == 3
    assert item.current_period_end > item.current_period_start
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("paid", 4500, 0)
    assert invoice.parent.subscription_details.subscription == sub.id
    lines = client.v1.invoices.line_items.list(invoice.id)
    assert [line.amount for line in lines.data] == [4500]
    assert [i.id for i in client.v1.invoices.list(params={"customer": paying_customer.id}).data] == [invoice.id]
