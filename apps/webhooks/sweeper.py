"""Re-enqueues ledger rows that no worker is going to finish.

An event is lost between the ledger and its effects when the broker drops the message (row stays
`received`), when a worker dies mid-way (row stays `processing` with an old claim), or when the
task gave up its retries (row stays `failed`). Beat runs this every minute; the claim in
event_process makes a re-enqueue of a row that is in fact being processed harmless.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.webhooks import metrics
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.processing import processing_stuck_after
from apps.webhooks.tasks import process_event

log = structlog.get_logger("billing.webhooks")

Status = ProcessorEvent.Status
BATCH = 500  # per status and run: a backlog drains over a few minutes instead of flooding the broker


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def failed_backoff(attempts: int) -> timedelta:
    """The wait before the sweeper retries a failed row: doubles per attempt, from longer than the
    task's own retry backoff (10 min) up to 6 h, so the two retry loops rarely overlap."""
    base = _setting("WEBHOOK_SWEEP_FAILED_AFTER_SECONDS", 900)
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 6 * 3600))


def _failed_due(now: datetime, max_attempts: int) -> Q:
    due = Q(pk__in=[])
    for attempts in range(1, max_attempts):
        due |= Q(attempts=attempts, claimed_at__lt=now - failed_backoff(attempts))
    return Q(status=Status.FAILED) & due


def ledger_sweep() -> dict[str, int]:
    now = timezone.now()
    received_after = timedelta(seconds=_setting("WEBHOOK_SWEEP_RECEIVED_AFTER_SECONDS", 120))
    max_attempts = _setting("WEBHOOK_MAX_ATTEMPTS", 20)
    selections = {
        Status.RECEIVED: Q(status=Status.RECEIVED, received_at__lt=now - received_after),
        Status.PROCESSING: Q(status=Status.PROCESSING, claimed_at__lt=now - processing_stuck_after()),
        Status.FAILED: _failed_due(now, max_attempts),
    }
    summary: dict[str, int] = {}
    for status, selection in selections.items():
        ids = list(
            ProcessorEvent.objects.filter(selection).order_by("received_at").values_list("pk", flat=True)[:BATCH]
        )
        for ledger_id in ids:
            process_event.delay(ledger_id)
        summary[str(status)] = len(ids)
        if ids:
            metrics.sweeper_requeued.labels(status=str(status)).inc(len(ids))
    log.info("webhook_ledger_swept", **summary)
    return summary
