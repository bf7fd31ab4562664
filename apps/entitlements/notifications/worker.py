"""The fulfillment worker: one run delivers the notifications that are due, batch after batch.

A run (the `fulfillment.deliver` task woken on commit, beat's `deliver-notifications` every
FULFILLMENT_POLL_INTERVAL_SECONDS, or `manage.py deliver_notifications`):
1. (beat's poll and the command) fails the deliveries held by a disabled endpoint past their window;
2. claims a batch of up to FULFILLMENT_BATCH_SIZE due deliveries under a lease (claims.py);
3. sends them, SEND_CONCURRENCY at a time on one pooled HTTP client, outside any transaction, and
   records the answers as they come (delivery.py) on this thread's database connection, those that
   arrived together in one short transaction;
4. claims again, until nothing is due or RUN_BUDGET_SECONDS have passed (then the task hands over
   to a fresh one, as the webhook drain does).

A send starts only while its lease has time left for it to finish (FULFILLMENT_TIMEOUT_SECONDS and
a margin); the rest of a batch whose lease runs short is handed back unsent, so a batch of slow
receivers never outlives its lease and is never sent twice by two live workers.

Several runs may go at once (wake-ups on several workers, beat's poll): SKIP LOCKED gives them
disjoint batches. Beat's and the command's runs go through apps.common.jobs (one at a time, a
JobRun row each); a woken run records a JobRun only when it fails, so that the health endpoint's
last error and the loop error total cover every run without a row per wake-up.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import datetime

import httpx
import structlog
from django.utils import timezone

from apps.common.jobs.policy import policy_for
from apps.common.models import JobRun
from apps.entitlements.notifications import metrics
from apps.entitlements.notifications.claims import (
    Claim,
    deliveries_claim,
    deliveries_due,
    deliveries_release,
    held_deliveries_expire,
)
from apps.entitlements.notifications.delivery import (
    AttemptResult,
    FulfillmentConfig,
    Outbound,
    Outcome,
    Recorded,
    Sent,
    attempts_record,
    fulfillment_config,
    outbound_prepare,
    outbound_send,
)
from apps.entitlements.notifications.health import JOB, delivery_queue_state
from billing_service.beat_schedule import JobPolicySpec

log = structlog.get_logger("billing.notifications")

# Sends in flight at once in one run: one slow receiver must not stall the batch, and 8 connections
# is gentle on the receivers and on a 2-core worker.
SEND_CONCURRENCY = 8
# A run hands over to a fresh task after this long, well inside the job's 180 s timeout and the
# Celery task limits, so that other tasks get their turn on the worker.
RUN_BUDGET_SECONDS = 60.0
# Time a send needs beyond its timeout before its lease ends: recording it, and clock skew between
# this host and the database's view of "now".
LEASE_MARGIN_SECONDS = 2.0
ERROR_LENGTH = 500


@dataclass
class RunSummary:
    enabled: bool = True
    batches: int = 0
    claimed: int = 0
    delivered: int = 0
    retry_later: int = 0  # failed attempts after which a retry is scheduled
    failed: int = 0  # given up: the window ended (after an attempt, or held by a disabled endpoint)
    lost: int = 0  # overtaken after our lease ended: not recorded by us
    released: int = 0  # handed back unsent: the lease had no time left for them
    endpoints_disabled: int = 0
    out_of_time: bool = False  # the budget ran out with deliveries still due

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


Progress = Callable[[RunSummary], None]


def fulfillment_run(
    *,
    budget_seconds: float = RUN_BUDGET_SECONDS,
    endpoint_id: int | None = None,
    progress: Progress | None = None,
    housekeeping: bool = True,
    config: FulfillmentConfig | None = None,
) -> RunSummary:
    """One run; see the module docstring. Raises what the database raises (counted as a loop error).

    `housekeeping`: also fail the held deliveries past their window and refresh the backlog gauges.
    Beat's poll and the command do; a woken run skips both unless it had work, so that a burst of
    wake-ups costs one claim query each. `config`: the settings' unless given (the smoke test's).
    """
    config = config or fulfillment_config()
    summary = RunSummary()
    if not config.enabled:
        log.info("fulfillment_worker_disabled")
        summary.enabled = False
        return summary
    started_wall, started = timezone.now(), time.monotonic()
    metrics.last_run_started.set(started_wall.timestamp())
    try:
        if housekeeping:
            expired = held_deliveries_expire(now=timezone.now(), window_seconds=config.retry_window_seconds)
            summary.failed += expired
            metrics.failed.inc(expired)
        _run(config, summary, deadline=started + budget_seconds, endpoint_id=endpoint_id, progress=progress)
    except Exception:
        metrics.loop_errors.inc()
        log.exception("fulfillment_run_failed", **summary.as_dict())
        raise
    finally:
        metrics.run_seconds.observe(time.monotonic() - started)
        metrics.last_run_finished.set(timezone.now().timestamp())
    if housekeeping or summary.claimed:
        _gauges_set()
    if summary.claimed or summary.failed or summary.out_of_time:
        log.info("fulfillment_run_finished", **summary.as_dict())
    return summary


def _run(
    config: FulfillmentConfig,
    summary: RunSummary,
    *,
    deadline: float,
    endpoint_id: int | None,
    progress: Progress | None,
) -> None:
    policy = policy_for(JOB)
    timeout = httpx.Timeout(config.timeout_seconds)
    limits = httpx.Limits(max_connections=SEND_CONCURRENCY, max_keepalive_connections=SEND_CONCURRENCY)
    with (
        httpx.Client(timeout=timeout, limits=limits, follow_redirects=False) as client,
        ThreadPoolExecutor(max_workers=SEND_CONCURRENCY, thread_name_prefix="fulfillment-send") as pool,
    ):
        while True:
            claimed_at = time.monotonic()
            claim = deliveries_claim(
                limit=config.batch_size,
                now=timezone.now(),
                lease_seconds=config.lease_seconds,
                endpoint_id=endpoint_id,
            )
            if not claim.deliveries:
                return
            lease_deadline = claimed_at + config.lease_seconds - config.timeout_seconds - LEASE_MARGIN_SECONDS
            _batch_deliver(claim, client, pool, policy, config, summary, lease_deadline=lease_deadline)
            if progress is not None:
                progress(summary)
            if time.monotonic() >= deadline:
                summary.out_of_time = deliveries_due(now=timezone.now(), endpoint_id=endpoint_id)
                return


def _batch_deliver(
    claim: Claim,
    client: httpx.Client,
    pool: ThreadPoolExecutor,
    policy: JobPolicySpec,
    config: FulfillmentConfig,
    summary: RunSummary,
    *,
    lease_deadline: float,
) -> None:
    summary.batches += 1
    summary.claimed += len(claim.deliveries)
    now = timezone.now()
    outbounds = [outbound_prepare(delivery, now=now) for delivery in claim.deliveries]

    def send(outbound: Outbound) -> AttemptResult | None:
        # Checked when the send would start, not when it was queued: a pool busy with slow
        # receivers reaches the later ones late.
        if time.monotonic() >= lease_deadline:
            return None
        return outbound_send(client, outbound, timeout_seconds=config.timeout_seconds)

    futures: dict[Future[AttemptResult | None], Outbound] = {pool.submit(send, o): o for o in outbounds}
    unsent: list[int] = []
    waiting = set(futures)
    # Recorded on this thread as answers arrive (the pool's threads never touch the database): each
    # pass records every answer that came in while the previous pass was recording.
    while waiting:
        done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
        answered: list[Sent] = []
        for future in done:
            outbound, result = futures[future], future.result()
            if result is None:
                unsent.append(outbound.delivery_id)
            else:
                answered.append(Sent(outbound, result))
        if answered:
            recorded = attempts_record(answered, lease_until=claim.lease_until, policy=policy, config=config)
            for item, outcome in zip(answered, recorded, strict=True):
                _tally(outcome, item.result, summary)
    if unsent:
        summary.released += deliveries_release(ids=unsent, lease_until=claim.lease_until, now=timezone.now())
        log.warning("fulfillment_lease_short", released=len(unsent), lease_seconds=config.lease_seconds)


def _tally(recorded: Recorded, result: AttemptResult, summary: RunSummary) -> None:
    metrics.attempt_seconds.observe(result.duration_ms / 1000)
    if recorded.outcome == Outcome.LOST:
        summary.lost += 1
        metrics.lost_leases.inc()
        return
    if recorded.attempt_number > 1:
        metrics.retried.inc()
    if result.failure is not None:
        metrics.attempt_failures.labels(kind=result.failure.value).inc()
    if recorded.outcome == Outcome.DELIVERED:
        summary.delivered += 1
        metrics.delivered.inc()
    elif recorded.outcome == Outcome.RETRY:
        summary.retry_later += 1
    else:
        summary.failed += 1
        metrics.failed.inc()
    if recorded.endpoint_disabled:
        summary.endpoints_disabled += 1
        metrics.endpoints_disabled.inc()


def _gauges_set() -> None:
    state = delivery_queue_state(now=timezone.now())
    metrics.backlog.set(state.backlog)
    metrics.oldest_pending_age.set(state.oldest_pending_age_seconds or 0)
    metrics.disabled_endpoint_count.set(state.disabled_endpoints)


def fulfillment_job_body(progress: Progress | None = None) -> dict[str, int | bool]:
    """deliver-notifications' body (beat and the command), under the job's lock and JobRun."""
    return fulfillment_run(progress=progress).as_dict()


def fulfillment_woken_run() -> dict[str, int | bool]:
    """The woken task's run. Never raises: a failure is recorded as a failed JobRun (for the health
    endpoint's last error and the loop error total) and the leased deliveries wait for their lease."""
    started = timezone.now()
    try:
        return fulfillment_run(housekeeping=False).as_dict()
    except Exception as exc:
        _woken_failure_record(started, exc)
        return {"enabled": True, "error": True}


def _woken_failure_record(started: datetime, exc: Exception) -> None:
    error = f"{type(exc).__name__}: {exc}"
    try:
        JobRun.objects.create(
            job=JOB,
            trigger=JobRun.Trigger.MANUAL,
            requested_by="fulfillment.deliver (wake-up on commit)",
            outcome=JobRun.Outcome.FAILED,
            started_at=started,
            finished_at=timezone.now(),
            duration_ms=round((timezone.now() - started).total_seconds() * 1000),
            error=error if len(error) <= ERROR_LENGTH else error[: ERROR_LENGTH - 1] + "…",
        )
    except Exception:
        # The database is what failed: the log line of fulfillment_run is the record then.
        log.warning("fulfillment_failure_unrecorded", traceback=traceback.format_exc(limit=4))
