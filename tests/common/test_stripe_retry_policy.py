"""The gateway's retry decisions, without a network: status, Stripe-Should-Retry and Retry-After."""

from __future__ import annotations

import pytest
import stripe

from apps.common.stripe_gateway.retry_policy import backoff_seconds, retry_after_seconds, retry_reason


def _error(
    status: int | None, cls: type[stripe.StripeError] = stripe.APIError, headers: dict[str, str] | None = None
) -> stripe.StripeError:
    headers = headers or {}
    if issubclass(cls, stripe.InvalidRequestError):
        return cls("failed", None, http_status=status, headers=headers)
    return cls("failed", http_status=status, headers=headers)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (_error(429, stripe.RateLimitError), "rate_limited"),
        (_error(None, stripe.APIConnectionError), "network"),
        (_error(409), "idempotency_in_flight"),
        (_error(500), "server_error"),
        (_error(503), "server_error"),
        (_error(400, stripe.InvalidRequestError), None),
        (_error(401, stripe.AuthenticationError), None),
    ],
)
def test_without_stripes_word_the_status_decides(error: stripe.StripeError, reason: str | None) -> None:
    assert retry_reason(error) == reason


@pytest.mark.parametrize("header", ["Stripe-Should-Retry", "stripe-should-retry"])
def test_stripe_should_retry_false_is_final_whatever_the_status(header: str) -> None:
    for status, cls in [(500, stripe.APIError), (429, stripe.RateLimitError), (409, stripe.APIError)]:
        assert retry_reason(_error(status, cls, headers={header: "false"})) is None


def test_stripe_should_retry_true_retries_a_final_status() -> None:
    error = _error(400, stripe.InvalidRequestError, headers={"Stripe-Should-Retry": "true"})
    assert retry_reason(error) == "stripe_should_retry"
    # ...and keeps the status's own label when the status was retryable anyway.
    assert retry_reason(_error(500, headers={"Stripe-Should-Retry": "true"})) == "server_error"


def test_an_unknown_stripe_should_retry_value_is_ignored() -> None:
    assert retry_reason(_error(500, headers={"Stripe-Should-Retry": "maybe"})) == "server_error"
    assert retry_reason(_error(400, stripe.InvalidRequestError, headers={"Stripe-Should-Retry": "maybe"})) is None


def test_retry_after_is_read_in_seconds_and_nonsense_is_ignored() -> None:
    assert retry_after_seconds(_error(429, headers={"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(_error(429, headers={"retry-after": "0.5"})) == 0.5
    assert retry_after_seconds(_error(429, headers={"Retry-After": "soon"})) is None
    assert retry_after_seconds(_error(429, headers={"Retry-After": "-1"})) is None
    assert retry_after_seconds(_error(429)) is None


def test_the_backoff_is_jittered_and_capped() -> None:
    for failed in range(1, 12):
        ceiling = min(4.0, 0.25 * 2 ** (failed - 1))
        assert all(0 <= backoff_seconds(failed) <= ceiling for _ in range(50))
    assert len({backoff_seconds(3) for _ in range(20)}) > 1
