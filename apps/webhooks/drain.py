"""The drain: claims batches of `received` ledger rows and processes them until none is left.

It runs as a Celery task, started by the wake-up the webhook view arms on commit (apps/webhooks/
wakeup.py), by a beat entry every 30 seconds (wake-ups lost with a web process
or a broker outage), and again by itself when it used up its time budget with rows still waiting.

At most WEBHOOK_DRAIN_CONCURRENCY drains run at once, each holding one of that many PostgreSQL
session locks (released with the connection if the worker dies), so a burst of wake-ups cannot take
every slot of every worker; a drain that finds no free slot returns at once, since the running ones
loop until the queue is empty. On SQLite (one writer at a time) the slots are not enforced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.utils import timezone

from apps.common.locks import session_lock
from apps.webhooks import metrics
from apps.webhooks.batches import batch_process
from apps.webhooks.claims import ledger_claim, ledger_waiting

log = structlog.get_logger("billing.webhooks")

# A drain hands over to a fresh task after this long, well inside the task time limits, so that a
# long backlog never runs into them and other tasks get their turn on the worker.
BUDGET_SECONDS = 60.0
# Times a drain that found the queue empty looks again after giving up its slot (see ledger_drain).
RECHECKS = 3


@dataclass
class DrainSummary:
    batches: int = 0
    claimed: int = 0
    done: int = 0
    failed: int = 0
    busy: bool = False  # every slot was taken: the running drains take these rows
    out_of_time: bool = False  # the budget ran out with rows left: a continuation is due

    def as_dict(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "claimed": self.claimed,
            "done": self.done,
            "failed": self.failed,
            "busy": int(self.busy),
            "out_of_time": int(self.out_of_time),
        }


def _slots() -> int:
    return int(getattr(settings, "WEBHOOK_DRAIN_CONCURRENCY", 2))


def _batch_size() -> int:
    return int(getattr(settings, "WEBHOOK_BATCH_SIZE", 50))


def ledger_drain(*, budget_seconds: float = BUDGET_SECONDS) -> DrainSummary:
    """Drains the ledger queue; see the module docstring. Raises only what the database raises."""
    summary = DrainSummary()
    deadline = time.monotonic() + budget_seconds
    for _ in range(RECHECKS + 1):
        if not _drain_in_a_slot(summary, deadline):
            summary.busy = True
            break
        if summary.out_of_time:
            break
        # Our slot is free again. A wake-up that came while every slot was taken found none and
        # returned, counting on us: look once more, so that its rows wait for no periodic drain.
        if not ledger_waiting():
            break
    if summary.claimed or summary.out_of_time:
        log.info("webhook_ledger_drained", **summary.as_dict())
    return summary


def _drain_in_a_slot(summary: DrainSummary, deadline: float) -> bool:
    """Drains while holding a free slot; False when every slot is taken."""
    for slot in range(_slots()):
        with session_lock(f"webhooks:drain:{slot}") as held:
            if held:
                _drain_batches(summary, deadline)
                return True
    return False


def _drain_batches(summary: DrainSummary, deadline: float) -> None:
    limit = _batch_size()
    while True:
        claimed_at = timezone.now()
        try:
            rows = ledger_claim(limit=limit, now=claimed_at)
            if not rows:
                return
            metrics.drain_claims.inc(len(rows))
            metrics.drain_batch_size.observe(len(rows))
            result = batch_process(rows, claimed_at=claimed_at)
        except Exception:
            # The database went away mid-way: the claimed rows stay `processing` until the sweeper
            # judges the claim stale. The next wake-up or periodic drain starts over.
            metrics.drain_errors.inc()
            log.exception("webhook_drain_failed", claimed=summary.claimed)
            raise
        summary.batches += 1
        summary.claimed += len(rows)
        summary.done += result.done
        summary.failed += result.failed
        if time.monotonic() >= deadline:
            summary.out_of_time = ledger_waiting()
            return
