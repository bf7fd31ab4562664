"""A job's policy as it stands now (the admin's row, else the declaration) and its backoff rule."""

from __future__ import annotations

import random
from decimal import Decimal

from apps.common.models import JobPolicy
from billing_service.beat_schedule import JobPolicySpec, scheduled_task


def policy_for(job: str) -> JobPolicySpec:
    """The installed policy of `job`; the declared one when install_beat_schedule has not run yet."""
    row = JobPolicy.objects.filter(job=job).first()
    if row is None:
        return scheduled_task(job).policy
    return JobPolicySpec(
        max_attempts=row.max_attempts,
        base_backoff_seconds=row.base_backoff_seconds,
        backoff_multiplier=row.backoff_multiplier,
        max_backoff_seconds=row.max_backoff_seconds,
        jitter_seconds=row.jitter_seconds,
        timeout_seconds=row.timeout_seconds,
    )


def backoff_seconds(policy: JobPolicySpec, failed_attempt: int) -> int:
    """The delay before the attempt after `failed_attempt`, without jitter: min(base * m**(n-1), max).

    Computed in Decimal and rounded up to whole seconds, so that 1.5^k never drifts below the rule.
    """
    raw = Decimal(policy.base_backoff_seconds) * policy.backoff_multiplier ** (failed_attempt - 1)
    capped = min(raw, Decimal(policy.max_backoff_seconds))
    return int(capped.to_integral_value(rounding="ROUND_CEILING"))


def retry_delay_seconds(policy: JobPolicySpec, failed_attempt: int, *, rng: random.Random | None = None) -> float:
    """Backoff plus a uniform jitter in [0, jitter_seconds]: two workers never retry in lockstep."""
    jitter = (rng or random).uniform(0, policy.jitter_seconds)
    return backoff_seconds(policy, failed_attempt) + jitter
