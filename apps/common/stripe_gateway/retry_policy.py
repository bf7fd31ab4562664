"""Which failed Stripe attempts are retried, and after how long (stamina runs the loop: client.py).

Stripe's own word comes first: its `Stripe-Should-Retry` response header says whether a retry can
succeed (true: retry, false: do not), whatever the status. Without it: 429 (after Retry-After when
given), 5xx, network errors and timeouts, and 409 for an idempotency key still in flight are retried;
everything else is final.
"""

from __future__ import annotations

import random

import stripe

# The backoff without Retry-After: exponential from 0.25 s, capped at 4 s, with full jitter so that
# concurrent callers that failed together do not retry together.
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 4.0


def _header(error: stripe.StripeError, name: str) -> str | None:
    # The SDK keeps the HTTP client's headers: a case-insensitive mapping from requests, but a plain
    # dict from other clients, so look the name up without regard to case.
    headers = error.headers or {}
    wanted = name.lower()
    return next((str(value) for key, value in headers.items() if key.lower() == wanted), None)


def should_retry_header(error: stripe.StripeError) -> bool | None:
    """Stripe-Should-Retry as a bool; None when absent or neither `true` nor `false`."""
    value = _header(error, "Stripe-Should-Retry")
    return {"true": True, "false": False}.get((value or "").strip().lower())


def retry_reason(error: stripe.StripeError) -> str | None:
    """The metric label of a retryable failure, or None when the failure is final."""
    told = should_retry_header(error)
    if told is False:
        return None
    if isinstance(error, stripe.RateLimitError):
        return "rate_limited"
    if isinstance(error, stripe.APIConnectionError):
        return "network"
    if error.http_status == 409:
        # Stripe answers 409 while a request with the same key is still being processed. (Its 400
        # idempotency_error, same key with other parameters, is final: retrying cannot fix it.)
        return "idempotency_in_flight"
    if error.http_status is not None and error.http_status >= 500:
        return "server_error"
    if told is True:
        return "stripe_should_retry"
    return None


def retry_after_seconds(error: stripe.StripeError) -> float | None:
    value = _header(error, "Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    # A negative or non-finite value cannot be slept; fall back to our own backoff.
    return seconds if seconds is not None and 0 <= seconds < float("inf") else None


def backoff_seconds(failed_attempts: int) -> float:
    """The wait after the `failed_attempts`-th failure (1-based) when Stripe named none."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failed_attempts - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
