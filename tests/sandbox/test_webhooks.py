"""Signed delivery, retries with backoff, the delivery log and chaos switches."""

from __future__ import annotations

import stripe

from .conftest import wait_for


def test_deliveries_are_signed_for_construct_event(client, receiver, endpoint) -> None:
    customer = client.v1.customers.create(params={"email": "w@example.com"})
    wait_for(lambda: receiver.events())
    request = receiver.requests[0]
    event = stripe.Webhook.construct_event(request["body"], request["headers"]["Stripe-Signature"], endpoint.secret)
    assert event.type == "customer.created"
    assert event.data.object.id == customer.id
    try:
        stripe.Webhook.construct_event(request["body"], request["headers"]["Stripe-Signature"], "whsec_wrong")
    except stripe.SignatureVerificationError:
        pass
    else:
        raise AssertionError("a wrong secret must not verify")
    wait_for(lambda: client.v1.events.retrieve(event.id).pending_webhooks == 0)


def test_enabled_events_filter(client, receiver) -> None:
    client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["product.*"]})
    client.v1.customers.create()
    client.v1.products.create(params={"name": "x"})
    wait_for(lambda: receiver.events())
    client.v1.products.create(params={"name": "y"})
    wait_for(lambda: len(receiver.events()) == 2)
    assert receiver.event_types() == ["product.created", "product.created"]


def test_failing_receiver_is_retried_then_succeeds(client, sandbox, receiver, endpoint) -> None:
    receiver.statuses = [500, 503, 200]
    client.v1.customers.create()
    wait_for(lambda: receiver.events(), timeout=10)
    delivery = wait_for(lambda: [d for d in sandbox.deliveries() if d["status"] == "succeeded"])[0]
    assert [a["status"] for a in delivery["attempts"]] == [500, 503, 200]
    # Stripe's schedule, compressed 1000x: the 2nd attempt came ~0.3 s after the 1st.
    gap = delivery["attempts"][1]["at"] - delivery["attempts"][0]["at"]
    assert 0.25 <= gap < 2


def test_timeouts_count_as_failures(client, sandbox, receiver, endpoint) -> None:
    sandbox.configure(delivery_timeout_s=0.2)
    receiver.delay_s = 0.5
    client.v1.customers.create()
    delivery = wait_for(lambda: [d for d in sandbox.deliveries() if len(d["attempts"]) >= 2])[0]
    assert delivery["attempts"][0]["error"] == "timeout"
    receiver.delay_s = 0


def test_retry_stops_after_three_days_of_schedule(client, sandbox, receiver, endpoint) -> None:
    sandbox.configure(retry_time_scale=0.00001)
    receiver.statuses = [500] * 100
    client.v1.customers.create()
    delivery = wait_for(lambda: [d for d in sandbox.deliveries() if d["status"] == "failed"], timeout=10)[0]
    assert 8 <= len(delivery["attempts"]) <= 16


def test_duplicates_chaos(client, sandbox, receiver, endpoint) -> None:
    sandbox.configure(duplicate_probability=1.0)
    customer = client.v1.customers.create()
    wait_for(lambda: len(receiver.events()) == 2)
    assert [e["data"]["object"]["id"] for e in receiver.events()] == [customer.id, customer.id]
    assert {d["kind"] for d in sandbox.deliveries()} == {"original", "duplicate"}


def test_shuffle_chaos_delivers_everything(client, sandbox, receiver, endpoint) -> None:
    sandbox.configure(shuffle_max_delay_ms=200)
    ids = [client.v1.customers.create().id for _ in range(8)]
    wait_for(lambda: len(receiver.events()) == 8)
    assert sorted(e["data"]["object"]["id"] for e in receiver.events()) == sorted(ids)


def test_redeliver_old_event_with_fresh_signature(client, sandbox, receiver, endpoint) -> None:
    client.v1.customers.create()
    wait_for(lambda: receiver.events())
    event_id = receiver.events()[0]["id"]
    sandbox.redeliver(event_id)
    wait_for(lambda: len(receiver.events()) == 2)
    late = receiver.requests[1]
    assert (
        stripe.Webhook.construct_event(late["body"], late["headers"]["Stripe-Signature"], endpoint.secret).id
        == event_id
    )
    assert [d["kind"] for d in sandbox.deliveries(event_id=event_id)] == ["original", "redelivery"]


def test_non_loopback_urls_are_refused(client, sandbox) -> None:
    client.v1.webhook_endpoints.create(params={"url": "http://example.com/hook", "enabled_events": ["*"]})
    client.v1.customers.create()
    delivery = wait_for(lambda: [d for d in sandbox.deliveries() if d["attempts"]])[0]
    assert delivery["attempts"][0]["error"].startswith("refused")
