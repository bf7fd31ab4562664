"""The Stripe gateway against the sandbox's fault switches."""

from __future__ import annotations

import time

import pytest
import stripe
from prometheus_client import REGISTRY

from apps.checkout.services import customer_get_or_create
from apps.common.stripe_gateway import StripeUnavailable
from stripe_sandbox.testing import SandboxProcess
from tests.checkout.conftest import checkout_body
from tests.conftest import Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


def _retries(operation: str, reason: str) -> float:
    value = REGISTRY.get_sample_value("billing_stripe_retries_total", {"operation": operation, "reason": reason})
    return value or 0.0


def test_a_429_then_success_is_retried_after_retry_after(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    stripe_sandbox.set_fault("/v1/customers", method="POST", status=429, count=1, retry_after=1)
    before = _retries("customer.create", "rate_limited")
    started = time.monotonic()
    customer = customer_get_or_create(project=alice.project, user_id="u-429")
    assert time.monotonic() - started >= 1.0  # it waited as Retry-After asked
    assert customer.stripe_customer_id is not None
    assert len(stripe_client.v1.customers.list().data) == 1
    assert _retries("customer.create", "rate_limited") == before + 1


def test_persistent_500s_give_a_502_within_the_bound(
    alice: Tenant, catalog: dict[str, str], stripe_sandbox: SandboxProcess, settings: object
) -> None:
    settings.STRIPE_RETRY_BUDGET_SECONDS = 2.0  # type: ignore[attr-defined]
    settings.STRIPE_TIMEOUT_SECONDS = 1.0  # type: ignore[attr-defined]
    stripe_sandbox.set_fault("/v1/checkout/sessions", method="POST", status=500)
    started = time.monotonic()
    response = alice.client().post(
        "/api/v1/checkout/session", checkout_body(alice, catalog["pro-monthly"]), format="json"
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 502
    body = response.json()
    assert body["detail"] == "Stripe is unavailable; retry later."
    assert body["stripe_request_id"].startswith("req_")
    # The bound: no retry starts after the budget, and one already in flight may add a timeout.
    assert elapsed < 2.0 + 1.0 + 0.5


def test_a_create_whose_answer_was_lost_is_retried_without_a_duplicate(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    # Stripe applies the write, then the answer is lost (500): the retry carries the same key.
    stripe_sandbox.set_fault("/v1/customers", method="POST", status=500, count=1, after_apply=True)
    customer = customer_get_or_create(project=alice.project, user_id="u-lost")
    customers = stripe_client.v1.customers.list().data
    assert len(customers) == 1
    assert customers[0].id == customer.stripe_customer_id


def test_an_invalid_request_at_stripe_is_a_400_with_stripes_message(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    # The price is in our mirror but was deleted... here: its product archived at Stripe after sync.
    stripe_client.v1.prices.update(catalog["pro-monthly"], params={"active": False})
    response = alice.client().post(
        "/api/v1/checkout/session", checkout_body(alice, catalog["pro-monthly"]), format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Stripe: ")


def test_a_network_failure_is_a_502(alice: Tenant, settings: object, stripe_sandbox: SandboxProcess) -> None:
    settings.STRIPE_API_HOST = "http://127.0.0.1:1"  # type: ignore[attr-defined]
    settings.STRIPE_RETRY_BUDGET_SECONDS = 1.0  # type: ignore[attr-defined]
    with pytest.raises(StripeUnavailable):
        customer_get_or_create(project=alice.project, user_id="u-net")


def test_stripe_should_retry_false_makes_a_5xx_final(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    # A 500 is retried by default; Stripe saying "do not retry" wins: one attempt, then 502.
    stripe_sandbox.set_fault("/v1/customers", method="POST", status=500, count=1, should_retry=False)
    before = _retries("customer.create", "server_error")
    with pytest.raises(StripeUnavailable):
        customer_get_or_create(project=alice.project, user_id="u-no-retry")
    assert _retries("customer.create", "server_error") == before
    assert stripe_client.v1.customers.list().data == []


def test_stripe_should_retry_true_makes_a_4xx_retried(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    # A 400 is final by default; Stripe saying "retry" wins: the second attempt creates the customer once.
    stripe_sandbox.set_fault("/v1/customers", method="POST", status=400, count=1, should_retry=True)
    before = _retries("customer.create", "stripe_should_retry")
    customer = customer_get_or_create(project=alice.project, user_id="u-retry")
    assert customer.stripe_customer_id is not None
    assert [c.id for c in stripe_client.v1.customers.list().data] == [customer.stripe_customer_id]
    assert _retries("customer.create", "stripe_should_retry") == before + 1


def test_stripe_should_retry_false_stops_a_429_too(alice: Tenant, stripe_sandbox: SandboxProcess) -> None:
    stripe_sandbox.set_fault("/v1/customers", method="POST", status=429, count=1, retry_after=1, should_retry=False)
    started = time.monotonic()
    with pytest.raises(StripeUnavailable):
        customer_get_or_create(project=alice.project, user_id="u-429-final")
    assert time.monotonic() - started < 1.0  # it did not wait for Retry-After


def test_retries_stop_before_a_wait_would_cross_the_budget() -> None:
    # Without a sandbox: a call that always fails with a retryable error, under a short budget. stamina
    # really sleeps here (no set_testing): the budget is what stops it, before a wait would cross it.
    from django.test import override_settings

    from apps.common.stripe_gateway.client import call_stripe

    calls: list[float] = []

    def always_503() -> None:
        calls.append(time.monotonic())
        raise stripe.APIError("down", http_status=503, headers={"stripe-should-retry": "TRUE"})

    with override_settings(STRIPE_RETRY_BUDGET_SECONDS=1.0):
        started = time.monotonic()
        with pytest.raises(StripeUnavailable):
            call_stripe("test.op", always_503)
    assert len(calls) >= 2
    assert time.monotonic() - started < 1.0
