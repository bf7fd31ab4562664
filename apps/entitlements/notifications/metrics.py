"""Prometheus series of the fulfillment worker (notifications to the micro-apps).

Counted in the Celery worker, so they reach Prometheus through the multiprocess directory: the web's
/metrics on the same host, or the worker's own exporter (apps/common/worker_metrics.py,
docs/operations.md "Metrics from the worker"). The gauges are set at the end of every run (the
backlog as that run left it) with multiprocess_mode="mostrecent", so the newest run of any process
is what a scrape shows; billing_fulfillment_last_run_finished_timestamp_seconds says how fresh that is.
GET /api/v1/fulfillment/metrics reads its totals from the database instead (right across processes
whatever is scraped).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

delivered = Counter(
    "billing_fulfillment_delivered_total",
    "Notification deliveries that an endpoint accepted (a 2xx answer).",
)
failed = Counter(
    "billing_fulfillment_failed_total",
    "Notification deliveries given up (left `failed`): their retry window ended.",
)
retried = Counter(
    "billing_fulfillment_retried_total",
    "Delivery attempts after the first one of their delivery (retries sent).",
)
attempt_failures = Counter(
    "billing_fulfillment_attempt_failures_total",
    "Failed delivery attempts, by kind (http_status, timeout, connection).",
    ["kind"],
)
loop_errors = Counter(
    "billing_fulfillment_loop_errors_total",
    "Worker runs stopped by an unexpected error (the database away): their claimed deliveries wait for "
    "their lease to end.",
)
lost_leases = Counter(
    "billing_fulfillment_lost_leases_total",
    "Attempts not recorded because another worker took the delivery over after the lease ended.",
)
endpoints_disabled = Counter(
    "billing_fulfillment_endpoints_disabled_total",
    "Endpoints disabled for failing for FULFILLMENT_DISABLE_AFTER_SECONDS.",
)
wakeups = Counter(
    "billing_fulfillment_wakeups_total",
    "Worker wake-ups published after a commit that queued notifications, by outcome (published, failed).",
    ["outcome"],
)
attempt_seconds = Histogram(
    "billing_fulfillment_attempt_seconds",
    "Duration of one delivery attempt (the POST, until its answer, error or timeout).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
run_seconds = Histogram(
    "billing_fulfillment_run_seconds",
    "Duration of one worker run (claims until nothing is due or its time budget ends).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
backlog = Gauge(
    "billing_fulfillment_backlog",
    "Pending deliveries when the latest worker run ended (those of disabled endpoints included).",
    multiprocess_mode="mostrecent",
)
oldest_pending_age = Gauge(
    "billing_fulfillment_oldest_pending_age_seconds",
    "Age of the oldest pending delivery when the latest worker run ended (0 when none).",
    multiprocess_mode="mostrecent",
)
disabled_endpoint_count = Gauge(
    "billing_fulfillment_disabled_endpoints",
    "Notification endpoints disabled when the latest worker run ended.",
    multiprocess_mode="mostrecent",
)
last_run_started = Gauge(
    "billing_fulfillment_last_run_started_timestamp_seconds",
    "Unix time at which the latest worker run started.",
    multiprocess_mode="max",
)
last_run_finished = Gauge(
    "billing_fulfillment_last_run_finished_timestamp_seconds",
    "Unix time at which the latest worker run finished.",
    multiprocess_mode="max",
)
