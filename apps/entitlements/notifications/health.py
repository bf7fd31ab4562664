"""Reads: how the fulfillment worker stands (GET /api/v1/fulfillment/health and /metrics).

Everything comes from the database, so any web process answers right whichever worker did the work:
- the runs are the `deliver-notifications` JobRun rows (beat's poll and the command; a woken run
  writes one only when it fails, see apps.entitlements.notifications.worker). Skipped starts (the
  job's lock was held) are not runs. Beat's poll runs every FULFILLMENT_POLL_INTERVAL_SECONDS, so
  "a run finished within RUNNING_INTERVALS intervals, or one is running now" means the worker, beat
  and the broker are all alive;
- the queue is the pending Delivery rows; the totals count Delivery and DeliveryAttempt rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet

from apps.common.models import JobRun
from apps.entitlements.notifications.models import Delivery, DeliveryAttempt, NotificationEndpoint
from billing_service.beat_schedule import scheduled_task

JOB = "deliver-notifications"  # the beat schedule entry whose runs are the worker's record
RUNNING_INTERVALS = 3

Outcome = JobRun.Outcome
Status = Delivery.Status


@dataclass(frozen=True)
class QueueState:
    backlog: int  # pending deliveries, those held by disabled endpoints included
    held: int  # of which held by a disabled endpoint
    oldest_pending_age_seconds: int | None
    disabled_endpoints: int


def delivery_queue_state(*, now: datetime) -> QueueState:
    pending = Delivery.objects.filter(status=Status.PENDING)
    state = pending.aggregate(
        backlog=Count("id"), held=Count("id", filter=Q(endpoint__enabled=False)), oldest=Min("created_at")
    )
    oldest: datetime | None = state["oldest"]
    return QueueState(
        backlog=int(state["backlog"] or 0),
        held=int(state["held"] or 0),
        oldest_pending_age_seconds=None if oldest is None else max(int((now - oldest).total_seconds()), 0),
        disabled_endpoints=NotificationEndpoint.objects.filter(enabled=False).count(),
    )


def _runs() -> QuerySet[JobRun]:
    return JobRun.objects.filter(job=JOB).exclude(outcome=Outcome.SKIPPED)


def fulfillment_health(*, now: datetime) -> dict[str, Any]:
    """The health report's fields (api_fulfillment.FulfillmentHealthApi's output)."""
    enabled = bool(settings.FULFILLMENT_WORKER_ENABLED)
    interval = int(settings.FULFILLMENT_POLL_INTERVAL_SECONDS)
    latest = _runs().order_by("-started_at", "-id").first()
    last_failed = _runs().filter(outcome=Outcome.FAILED).order_by("-finished_at", "-id").first()
    # A run still `running` past the job's timeout belongs to a dead worker, not a live one.
    timeout = timedelta(seconds=scheduled_task(JOB).policy.timeout_seconds)
    running_now = _runs().filter(outcome=Outcome.RUNNING, started_at__gte=now - timeout).exists()
    recent = _runs().filter(finished_at__gte=now - timedelta(seconds=RUNNING_INTERVALS * interval)).exists()
    queue = delivery_queue_state(now=now)
    return {
        "worker_enabled": enabled,
        "running": enabled and (running_now or recent),
        "poll_interval_seconds": interval,
        "batch_size": int(settings.FULFILLMENT_BATCH_SIZE),
        "latest_run": None
        if latest is None
        else {"started_at": latest.started_at, "finished_at": latest.finished_at, "status": latest.outcome},
        "last_error": last_failed.error if last_failed is not None else None,
        "last_error_at": last_failed.finished_at if last_failed is not None else None,
        "backlog": queue.backlog,
        "backlog_held": queue.held,
        "oldest_pending_age_seconds": queue.oldest_pending_age_seconds,
        "disabled_endpoints": queue.disabled_endpoints,
    }


def fulfillment_totals() -> dict[str, Any]:
    """The metrics report's fields (api_fulfillment.FulfillmentMetricsApi's output)."""
    deliveries = Delivery.objects.aggregate(
        delivered=Count("id", filter=Q(status=Status.DELIVERED)),
        failed=Count("id", filter=Q(status=Status.FAILED)),
        last_delivered_at=Max("delivered_at"),
        last_failed_at=Max("failed_at"),
    )
    runs = _runs().aggregate(
        loop_errors=Count("id", filter=Q(outcome=Outcome.FAILED)),
        last_run_started_at=Max("started_at"),
        last_run_finished_at=Max("finished_at"),
    )
    return {
        "delivered": int(deliveries["delivered"] or 0),
        "failed": int(deliveries["failed"] or 0),
        # Every attempt after a delivery's first is a retry.
        "retried": DeliveryAttempt.objects.filter(number__gt=1).count(),
        "loop_errors": int(runs["loop_errors"] or 0),
        "last_delivered_at": deliveries["last_delivered_at"],
        "last_failed_at": deliveries["last_failed_at"],
        "last_run_started_at": runs["last_run_started_at"],
        "last_run_finished_at": runs["last_run_finished_at"],
    }
