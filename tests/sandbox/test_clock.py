"""Test clock: trials end, subscriptions renew, failed renewals dun, period-end cancels apply."""

from __future__ import annotations

DAY = 86400


def _types_since(client, event_id=None):
    return [e.type for e in client.v1.events.list(params={"limit": 100}).data][::-1]


def test_trial_will_end_then_active_with_invoice(client, sandbox, paying_customer, monthly_price) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}], "trial_period_days": 7}
    )
    assert sub.status == "trialing"
    assert client.v1.invoices.retrieve(sub.latest_invoice).amount_due == 0
    sandbox.advance_clock(5 * DAY)
    assert client.v1.events.list(params={"type": "customer.subscription.trial_will_end"}).data
    assert client.v1.subscriptions.retrieve(sub.id).status == "trialing"
    sandbox.advance_clock(2 * DAY + 10)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active"
    assert after["items"].data[0].current_period_start == sub.trial_end
    invoice = client.v1.invoices.retrieve(after.latest_invoice)
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == ("paid", 1500, "subscription_cycle")
    updated = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert updated.data.previous_attributes.status == "trialing"


def test_renewal_success_moves_item_periods(client, sandbox, paying_customer, monthly_price) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )
    end = sub["items"].data[0].current_period_end
    result = sandbox.advance_clock(to=end + 60)
    assert result["transitions"] == 1
    renewed = client.v1.subscriptions.retrieve(sub.id)
    item = renewed["items"].data[0]
    assert item.current_period_start == end
    assert item.current_period_end > end + 27 * DAY
    assert renewed.status == "active"
    assert renewed.latest_invoice != sub.latest_invoice
    event = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert event.data.previous_attributes["items"].data[0].current_period_end == end
    assert event["request"]["id"] is None
    assert len(client.v1.invoices.list(params={"subscription": sub.id, "status": "paid"}).data) == 2


def test_failed_renewal_past_due_then_unpaid(client, sandbox, monthly_price) -> None:
    customer = client.v1.customers.create()
    pm = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer.id})
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": monthly_price.id}], "default_payment_method": pm.id}
    )
    assert sub.status == "incomplete"
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": "pm_card_visa"})
    client.v1.invoices.pay(sub.latest_invoice)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": pm.id})
    end = sub["items"].data[0].current_period_end
    sandbox.advance_clock(to=end + 1)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert failed
    assert failed[0].data.object.attempt_count >= 1
    sandbox.advance_clock(10 * DAY)  # retries at +3, +6, +9 days: 4 attempts in all
    final = client.v1.subscriptions.retrieve(sub.id)
    assert final.status == "unpaid"
    invoice = client.v1.invoices.retrieve(final.latest_invoice)
    assert invoice.attempt_count == 4
    assert invoice.status == "open"


def test_dunning_can_end_in_cancel(client, sandbox, monthly_price) -> None:
    sandbox.configure(dunning_final_status="canceled", max_payment_attempts=2)
    customer = client.v1.customers.create()
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price.id}],
            "default_payment_method": "pm_card_visa",
        }
    )
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": "pm_card_chargeCustomerFail"})
    sandbox.advance_clock(to=sub["items"].data[0].current_period_end + 4 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert client.v1.events.list(params={"type": "customer.subscription.deleted"}).data


def test_recovery_after_past_due(client, sandbox, monthly_price) -> None:
    customer = client.v1.customers.create()
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": monthly_price.id}],
            "default_payment_method": "pm_card_visa",
        }
    )
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": "pm_card_chargeCustomerFail"})
    sandbox.advance_clock(to=sub["items"].data[0].current_period_end + 1)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": "pm_card_visa"})
    sandbox.advance_clock(3 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_cancel_at_period_end_applies(client, sandbox, paying_customer, monthly_price) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )
    flagged = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert flagged.cancel_at == sub["items"].data[0].current_period_end
    sandbox.advance_clock(to=flagged.cancel_at + 5)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled"
    assert ended.ended_at >= flagged.cancel_at
    assert client.v1.events.list(params={"type": "customer.subscription.deleted"}).data[0].data.object.id == sub.id
    assert client.v1.subscriptions.list().data == []
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "canceled"}).data] == [sub.id]


def test_checkout_sessions_expire_with_the_clock(client, sandbox, monthly_price) -> None:
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": monthly_price.id}],
            "success_url": "http://127.0.0.1:9/",
        }
    )
    sandbox.advance_clock(25 * 3600)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"


def test_stripe_test_clock_api_advances_sandbox_time(client, sandbox) -> None:
    now = sandbox.now()
    test_clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": now})
    advanced = client.v1.test_helpers.test_clocks.advance(test_clock.id, params={"frozen_time": now + 7200})
    assert advanced.frozen_time == now + 7200
    assert sandbox.now() >= now + 7200
    assert client.v1.customers.create().created >= now + 7200
