"""One Stripe call: the right client, bounded retries with backoff, errors mapped to ours, metrics.

Retried: 429 (honouring Retry-After), 5xx, network errors and timeouts, and Stripe's 409 for an
idempotency key still in flight. Every retry of a write reuses its Idempotency-Key, so Stripe applies
it once. Everything else is final. The whole operation, retries included, stays within
STRIPE_RETRY_BUDGET_SECONDS so a caller's request never hangs on Stripe.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

import stripe
import structlog
from django.conf import settings

from apps.common.stripe_gateway.credentials import credentials_resolver
from apps.common.stripe_gateway.errors import StripeInvalidRequest, StripeUnavailable
from apps.common.stripe_gateway.metrics import stripe_latency, stripe_requests, stripe_retries

log = structlog.get_logger("billing.stripe")
T = TypeVar("T")

_BACKOFF_BASE_SECONDS = 0.25
_BACKOFF_CAP_SECONDS = 4.0


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


def _retry_reason(error: stripe.StripeError) -> str | None:
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
    return None


def _retry_after_seconds(error: stripe.StripeError) -> float | None:
    headers = error.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    # Full jitter: concurrent callers that failed together do not retry together.
    return random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311


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


def call_stripe(operation: str, call: Callable[[], T]) -> T:
    """Runs `call` (one SDK request) with bounded retries; raises StripeInvalidRequest/StripeUnavailable."""
    started = time.monotonic()
    deadline = started + settings.STRIPE_RETRY_BUDGET_SECONDS
    attempt = 0
    try:
        while True:
            try:
                result = call()
            except stripe.StripeError as error:
                reason = _retry_reason(error)
                wait = _retry_after_seconds(error) or _backoff(attempt)
                if reason is None or time.monotonic() + wait >= deadline:
                    log.warning(
                        "stripe_call_failed",
                        operation=operation,
                        http_status=error.http_status,
                        stripe_request_id=error.request_id,
                        attempts=attempt + 1,
                        error=str(error),
                    )
                    raise _final_error(operation, error) from error
                stripe_retries.labels(operation, reason).inc()
                log.info("stripe_call_retry", operation=operation, reason=reason, wait_s=round(wait, 3))
                time.sleep(wait)
                attempt += 1
                continue
            stripe_requests.labels(operation, "ok").inc()
            return result
    finally:
        stripe_latency.labels(operation).observe(time.monotonic() - started)


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
