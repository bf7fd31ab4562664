"""Per-job Prometheus figures. Counted in the worker; exported through the multiprocess directory
(docs/operations.md, "Metrics from the worker")."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOB_RUNS = Counter(
    "billing_job_runs_total",
    "Starts of periodic jobs by trigger and outcome (succeeded, failed, skipped).",
    ["job", "trigger", "outcome"],
)
JOB_RETRIES = Counter("billing_job_retries_total", "Retries of failed periodic job attempts, scheduled.", ["job"])
JOB_DURATION = Histogram(
    "billing_job_duration_seconds",
    "Wall time of periodic job attempts that ran (skipped starts excluded).",
    ["job"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
JOB_LAST_SUCCESS = Gauge(
    "billing_job_last_success_timestamp_seconds",
    "Unix time at which each periodic job last succeeded (in this worker's lifetime).",
    ["job"],
    # Several worker processes each hold a value: the newest is the job's last success.
    multiprocess_mode="max",
)
