"""Recovery counters. Counted in the worker and exported through the multiprocess directory, like the
periodic jobs' own figures; the time of the last successful run is the job mechanism's
billing_job_last_success_timestamp_seconds{job="hosted-session-recovery"} (and {job="sweep-hosted-sessions"})."""

from __future__ import annotations

from prometheus_client import Counter

SWEEPS = Counter(
    "billing_recovery_sweeps_total",
    "Hosted-session sweeps by outcome (succeeded, failed, dry_run).",
    ["outcome"],
)
SESSIONS_EXPIRED = Counter(
    "billing_hosted_sessions_expired_total", "Open hosted sessions past their expiry marked expired by a sweep."
)
SESSIONS_ABANDONED = Counter(
    "billing_hosted_sessions_abandoned_total",
    "Expired hosted sessions of still-open invoices marked abandoned by a sweep.",
)
ATTEMPTS = Counter(
    "billing_recovery_attempts_total",
    "Ways back given to abandoned sessions, by method (stripe_recovery_url, regenerated).",
    ["method"],
)
NOTIFICATIONS = Counter(
    "billing_recovery_notifications_total",
    "Recovery notifications by channel (email, slack) and outcome (sent, failed).",
    ["channel", "outcome"],
)
