from __future__ import annotations

from prometheus_client import Counter, Histogram

stripe_requests = Counter(
    "billing_stripe_requests_total",
    "Stripe API calls by operation and outcome (ok, invalid, unavailable).",
    ["operation", "outcome"],
)
stripe_retries = Counter(
    "billing_stripe_retries_total",
    "Stripe API attempts that were retried, by operation and reason "
    "(rate_limited, server_error, network, idempotency_in_flight, stripe_should_retry).",
    ["operation", "reason"],
)
stripe_latency = Histogram(
    "billing_stripe_request_duration_seconds",
    "Time of one Stripe operation including its retries.",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30),
)
