"""The hosted-session sweep: open sessions past their expiry become expired, and expired sessions whose
invoice is still open become abandoned once HOSTED_SESSION_ABANDON_AFTER_SECONDS have passed.

Set-based: each step is a few UPDATE statements, never a loop of saves, and its count is the
UPDATE's row count, so two sweepers running at once never count a row twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypedDict

import structlog
from django.db.models import QuerySet
from django.utils import timezone

from apps.checkout.models import CheckoutSession, Invoice
from apps.recovery import metrics
from apps.recovery.config import recovery_settings

log = structlog.get_logger("billing.recovery")

Status = CheckoutSession.Status
# Rows per UPDATE. Each batch is its own short transaction, so a webhook handler waiting on one of
# its rows waits for a batch, not for the whole sweep (bench/session_sweep.py measures the sweep).
BATCH_SIZE = 10_000

Progress = Callable[[str, int], None]


class SweepCounts(TypedDict):
    expired: int
    abandoned: int
    dry_run: bool


def _expirable(now: datetime) -> QuerySet[CheckoutSession]:
    # Invoice sessions only: a price checkout's row is left to Stripe's checkout.session.expired.
    return CheckoutSession.objects.filter(status=Status.OPEN, invoice__isnull=False, expires_at__lt=now)


def _abandonable(now: datetime, abandon_after_seconds: int) -> QuerySet[CheckoutSession]:
    # `invoice_id IN (open invoices)` rather than a join on invoice__status: Django turns an UPDATE
    # with a join into `id IN (subquery)`, and PostgreSQL re-checks a concurrently updated row only
    # against conditions on the updated table itself.
    open_invoices = Invoice.objects.filter(status=Invoice.Status.OPEN).values("pk")
    return CheckoutSession.objects.filter(
        status=Status.EXPIRED,
        expired_at__lt=now - timedelta(seconds=abandon_after_seconds),
        invoice_id__in=open_invoices,
    )


def _update_in_batches(
    rows: QuerySet[CheckoutSession], from_status: str, progress: Progress | None, step: str, **values: object
) -> int:
    """Updates `rows` BATCH_SIZE at a time; the number of rows this process changed.

    Each batch reads up to BATCH_SIZE ids, then UPDATEs those still in `from_status`. When another
    sweeper changes one of them first, PostgreSQL makes this UPDATE wait for its commit and re-checks
    `status` (a condition on the updated table itself) against the new row, so the row is skipped:
    each row is changed, and counted, by exactly one sweeper. Rows are not locked while reading: a
    FOR UPDATE would write every row twice (its lock, then its update). The loop ends on a batch that
    changed nothing, so that a batch shortened by another sweeper does not end it early.
    """
    total = 0
    while True:
        batch = list(rows.order_by().values_list("pk", flat=True)[:BATCH_SIZE])
        # The whole condition again (status, and for abandoning: the invoice still open), not the ids
        # alone: an invoice paid between the read and the UPDATE keeps its session expired.
        changed = rows.filter(pk__in=batch, status=from_status).update(**values) if batch else 0
        total += changed
        if progress is not None and changed:
            progress(step, total)
        if changed == 0:
            return total


def sweep_hosted_sessions(
    *, now: datetime | None = None, dry_run: bool = False, progress: Progress | None = None
) -> SweepCounts:
    """Expires and abandons hosted sessions; with dry_run, counts what it would change and writes nothing.

    Sessions it expires now get expired_at = now, so they are abandoned by a sweep at least
    HOSTED_SESSION_ABANDON_AFTER_SECONDS later, never by the same one. `progress(step, so_far)` is
    called after each batch (the management command prints it).
    """
    now = now or timezone.now()
    abandon_after = recovery_settings().abandon_after_seconds
    if dry_run:
        counts = SweepCounts(
            expired=_expirable(now).count(), abandoned=_abandonable(now, abandon_after).count(), dry_run=True
        )
        metrics.SWEEPS.labels(outcome="dry_run").inc()
        return counts
    try:
        expired = _update_in_batches(
            _expirable(now), Status.OPEN, progress, "expired", status=Status.EXPIRED, expired_at=now, updated_at=now
        )
        abandoned = _update_in_batches(
            _abandonable(now, abandon_after),
            Status.EXPIRED,
            progress,
            "abandoned",
            status=Status.ABANDONED,
            abandoned_at=now,
            updated_at=now,
        )
    except Exception:
        metrics.SWEEPS.labels(outcome="failed").inc()
        raise
    metrics.SWEEPS.labels(outcome="succeeded").inc()
    metrics.SESSIONS_EXPIRED.inc(expired)
    metrics.SESSIONS_ABANDONED.inc(abandoned)
    if expired or abandoned:
        log.info("hosted_sessions_swept", expired=expired, abandoned=abandoned)
    return SweepCounts(expired=expired, abandoned=abandoned, dry_run=False)
