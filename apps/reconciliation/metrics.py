"""Reconciliation figures. Counted where the run executes (the worker, or the `reconcile` command's
process) and exported through the multiprocess directory like the periodic jobs' own.

Beat's runs also have the job mechanism's billing_job_last_success_timestamp_seconds{job="reconcile-daily"}
(and {job="reconcile-weekly"}); the gauge here counts every successful run, whoever started it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RUNS = Counter(
    "billing_reconciliation_runs_total",
    "Reconciliation runs (one per project) by mode and outcome (succeeded, failed, dry_run).",
    ["mode", "outcome"],
)
DRIFT = Counter(
    "billing_reconciliation_drift_total",
    "Differences with Stripe found by reconciliation runs (dry runs excluded), by kind.",
    ["kind"],
)
CORRECTIONS = Counter(
    "billing_reconciliation_corrections_total",
    "Findings corrected automatically under their kind's policy, by kind.",
    ["kind"],
)
STRIPE_REQUESTS = Counter(
    "billing_reconciliation_stripe_requests_total",
    "Stripe requests made by reconciliation runs, retries included.",
)
LAST_SUCCESS = Gauge(
    "billing_reconciliation_last_success_timestamp_seconds",
    "Unix time at which a reconciliation run of each mode last succeeded (dry runs excluded).",
    ["mode"],
    # Every worker process and command holds its own value: the newest is the last success.
    multiprocess_mode="max",
)
