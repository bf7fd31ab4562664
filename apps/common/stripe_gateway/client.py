"""One Stripe call: the right client, bounded retries with backoff, errors mapped to ours, metrics.

stamina runs the retries; retry_policy.py decides which failures are retried (Stripe-Should-Retry
first, then 429 after Retry-After, 5xx, network errors, timeouts and 409 for a key in flight) and how
long to wait. Every retry of a write reuses its Idempotency-Key, so Stripe applies it once. The whole
operation, retries included, stays within STRIPE_RETRY_BUDGET_SECONDS so a caller's request never
hangs on Stripe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

import stamina
import stripe
import structlog
from django.conf import settings

from apps.common.stripe_gateway.credentials import credentials_resolver
from apps.common.stripe_gateway.errors import StripeInvalidRequest, StripeUnavailable
from apps.common.stripe_gateway.metrics import stripe_latency, stripe_requests, stripe_retries
from apps.common.stripe_gateway.retry_policy import backoff_seconds, retry_after_seconds, retry_reason

log = structlog.get_logger("billing.stripe")
T = TypeVar("T")

# stamina's default instrumentation would count and log every retry a second time (its own Prometheus
# counter and structlog line); ours below carry the operation and reason, so only ours run.
stamina.instrumentation.set_on_retry_hooks([])


@cache
def _client(secret_key: str, api_base: str, api_version: str, timeout: float) -> stripe.StripeClient:
    return stripe.StripeClient(
        secret_key,
        stripe_version=api_version,
        base_addresses={"api": api_base},
        max_network_retries=0,  # retries are ours: bounded in time, counted, logged
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def stripe_client(*, project_slug: str | None) -> stripe.StripeClient:
    secret_key = credentials_resolver().secret_key(project_slug=project_slug)
    api_base = getattr(settings, "STRIPE_API_HOST", None) or stripe.DEFAULT_API_BASE
    return _client(secret_key, api_base, settings.STRIPE_API_VERSION, settings.STRIPE_TIMEOUT_SECONDS)


def _final_error(operation: str, error: stripe.StripeError) -> Exception:
    request_id = error.request_id
    if isinstance(error, stripe.InvalidRequestError | stripe.CardError) and (error.http_status or 0) < 500:
        stripe_requests.labels(operation, "invalid").inc()
        err = error.error
        message = (err.message if err is not None else None) or str(error.user_message or error)
        return StripeInvalidRequest(message, param=getattr(err, "param", None), stripe_request_id=request_id)
    stripe_requests.labels(operation, "unavailable").inc()
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return StripeUnavailable("Stripe refused our credentials.", stripe_request_id=request_id)
    return StripeUnavailable("Stripe is unavailable; retry later.", stripe_request_id=request_id)


class _Budget:
    """stamina's backoff hook for one operation: retry or not, after how long, within the time budget.

    It always names the wait itself (Retry-After, else our jittered backoff) so it can refuse a retry
    whose wait would end past the deadline; stamina's own timeout only checks the time already spent.
    It counts and logs each retry it schedules, as the hand-written loop did.
    """

    def __init__(self, operation: str, deadline: float) -> None:
        self.operation = operation
        self.deadline = deadline
        self.failed_attempts = 0

    def __call__(self, error: Exception) -> bool | float:
        if not isinstance(error, stripe.StripeError):
            return False  # not Stripe's answer: a bug of ours, never retried
        self.failed_attempts += 1
        reason = retry_reason(error)
        if reason is None:
            return False
        wait = retry_after_seconds(error) or backoff_seconds(self.failed_attempts)
        if time.monotonic() + wait >= self.deadline:
            return False
        stripe_retries.labels(self.operation, reason).inc()
        log.info("stripe_call_retry", operation=self.operation, reason=reason, wait_s=round(wait, 3))
        return wait


def call_stripe(operation: str, call: Callable[[], T]) -> T:
    """Runs `call` (one SDK request) with bounded retries; raises StripeInvalidRequest/StripeUnavailable."""
    started = time.monotonic()
    budget = _Budget(operation, deadline=started + settings.STRIPE_RETRY_BUDGET_SECONDS)
    try:
        # attempts and timeout are off: the hook above stops the retries, by status and by deadline.
        for attempt in stamina.retry_context(on=budget, attempts=None, timeout=None):
            with attempt:
                result = call()
    except stripe.StripeError as error:
        log.warning(
            "stripe_call_failed",
            operation=operation,
            http_status=error.http_status,
            stripe_request_id=error.request_id,
            attempts=budget.failed_attempts,
            error=str(error),
        )
        raise _final_error(operation, error) from error
    finally:
        stripe_latency.labels(operation).observe(time.monotonic() - started)
    stripe_requests.labels(operation, "ok").inc()
    return result


def _wire_value(value: Any) -> str:
    # The SDK parses Stripe's decimal strings (`unit_amount_decimal`) into Decimal; on the wire, and
    # in JSON columns, they are strings.
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def as_dict(obj: Any) -> dict[str, Any]:
    """The object as Stripe sent it (JSON types only), so nothing outside the gateway handles SDK types."""
    result: dict[str, Any] = json.loads(json.dumps(obj.to_dict(), default=_wire_value))
    return result


def djstripe_mirror(model: Any, data: dict[str, Any], *, project_slug: str | None) -> Any:
    """Upserts a dj-stripe model from an object we already hold (an event snapshot, a list page).

    dj-stripe may fetch related objects itself (the owner account, a missing product) through the
    SDK's global configuration, so that configuration is pointed where our own client points.
    """
    stripe.api_base = getattr(settings, "STRIPE_API_HOST", None) or stripe.DEFAULT_API_BASE
    stripe.api_version = settings.STRIPE_API_VERSION
    secret_key = credentials_resolver().secret_key(project_slug=project_slug)
    return model.sync_from_stripe_data(data, api_key=secret_key)
