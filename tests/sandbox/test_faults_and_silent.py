"""Fault injection and silent (event-less) changes."""

from __future__ import annotations

import time

import pytest
import stripe


def _retrying_client(sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.base_url}, max_network_retries=2)


def test_429_answers_before_the_write_and_a_retry_creates_one(client, sandbox) -> None:
    sandbox.set_fault("/v1/customers", method="POST", status=429, count=1, retry_after=1)
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.customers.create(params={"email": "once@example.com"}, options={"idempotency_key": "r-1"})
    assert info.value.headers is not None
    assert info.value.headers["Retry-After"] == "1"
    assert client.v1.customers.list().data == []
    customer = client.v1.customers.create(params={"email": "once@example.com"}, options={"idempotency_key": "r-1"})
    assert [c.id for c in client.v1.customers.list().data] == [customer.id]


def test_sdk_retries_a_500_and_creates_one(client, sandbox) -> None:
    sandbox.set_fault("/v1/customers", method="POST", status=500, count=1)
    customer = _retrying_client(sandbox).v1.customers.create(params={"email": "once@example.com"})
    assert [c.id for c in client.v1.customers.list().data] == [customer.id]


def test_faulted_write_is_not_applied(client, sandbox) -> None:
    sandbox.set_fault("/v1/customers", method="POST", status=500, count=1)
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"email": "x@example.com"}, options={"idempotency_key": "f-1"})
    assert client.v1.customers.list().data == []
    retried = client.v1.customers.create(params={"email": "x@example.com"}, options={"idempotency_key": "f-1"})
    assert [c.id for c in client.v1.customers.list().data] == [retried.id]


def test_after_apply_fault_then_idempotent_retry_does_not_duplicate(client, sandbox) -> None:
    sandbox.set_fault("/v1/customers", method="POST", status=500, count=1, after_apply=True)
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"email": "y@example.com"}, options={"idempotency_key": "f-2"})
    assert len(client.v1.customers.list().data) == 1  # the write happened
    retried = client.v1.customers.create(params={"email": "y@example.com"}, options={"idempotency_key": "f-2"})
    assert retried.last_response.headers.get("Idempotent-Replayed") == "true"
    assert [c.id for c in client.v1.customers.list().data] == [retried.id]


def test_rate_429_has_retry_after_and_get_faults(client, sandbox) -> None:
    sandbox.set_fault("/v1/products", method="GET", status=429, rate=1.0, retry_after=3)
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.products.list()
    assert info.value.http_status == 429
    assert info.value.headers is not None
    assert info.value.headers["Retry-After"] == "3"
    client.v1.customers.list()  # other paths unaffected
    sandbox.clear_faults()
    client.v1.products.list()


def test_slow_fault(client, sandbox) -> None:
    sandbox.set_fault("/v1/account", delay_ms=300, count=1)
    started = time.monotonic()
    client.v1.accounts.retrieve_current()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    client.v1.accounts.retrieve_current()
    assert time.monotonic() - started < 0.3


def test_silent_cancel_and_refund_emit_no_events(client, sandbox, paying_customer, monthly_price) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )
    pi = client.v1.payment_intents.create(
        params={"amount": 500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    before = len(client.v1.events.list(params={"limit": 100}).data)
    sandbox.silent(f"subscriptions/{sub.id}/cancel")
    sandbox.silent(f"charges/{pi.latest_charge}/refund", {"amount": 200})
    sandbox.silent(f"objects/{paying_customer.id}", {"name": "Quietly renamed"})
    assert len(client.v1.events.list(params={"limit": 100}).data) == before
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 200
    assert client.v1.customers.retrieve(paying_customer.id).name == "Quietly renamed"


def test_persistence_across_restart(tmp_path) -> None:
    from stripe_sandbox.testing import SandboxProcess

    with SandboxProcess.start(data_dir=tmp_path) as first:
        c = stripe.StripeClient(first.api_key, base_addresses={"api": first.base_url}, max_network_retries=0)
        customer = c.v1.customers.create(params={"email": "kept@example.com"})
        deadline = time.monotonic() + 5
        while not (tmp_path / "stripe_sandbox_state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    with SandboxProcess.start(data_dir=tmp_path) as second:
        c = stripe.StripeClient(second.api_key, base_addresses={"api": second.base_url}, max_network_retries=0)
        assert c.v1.customers.retrieve(customer.id).email == "kept@example.com"
