"""Reads of the recovery run: which abandoned sessions are due an attempt, which notifications are owed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.checkout.models import CheckoutSession, Invoice
from apps.recovery.models import RecoveryAttempt, RecoveryRun


@dataclass(frozen=True)
class Candidate:
    """An abandoned session as read: its id and attempt count are the claim's condition."""

    session_id: int
    attempts: int


def recoverable_sessions(*, now: datetime, max_attempts: int, retry_after_seconds: int) -> QuerySet[CheckoutSession]:
    """Abandoned sessions of open invoices with attempts left whose last attempt is old enough.

    Open invoices only: an uncollectible one is finance's decision to stop asking, a paid or void one
    needs no way back.
    """
    open_invoices = Invoice.objects.filter(status=Invoice.Status.OPEN).values("pk")
    rested = Q(last_recovery_at__isnull=True) | Q(last_recovery_at__lte=now - timedelta(seconds=retry_after_seconds))
    return CheckoutSession.objects.filter(
        rested,
        status=CheckoutSession.Status.ABANDONED,
        invoice_id__in=open_invoices,
        recovery_attempts__lt=max_attempts,
    )


def recovery_candidates(*, now: datetime, max_attempts: int, retry_after_seconds: int, limit: int) -> list[Candidate]:
    """Up to `limit` of them, longest abandoned first."""
    rows = (
        recoverable_sessions(now=now, max_attempts=max_attempts, retry_after_seconds=retry_after_seconds)
        .order_by("abandoned_at", "pk")
        .values_list("pk", "recovery_attempts")[:limit]
    )
    return [Candidate(session_id=pk, attempts=attempts) for pk, attempts in rows]


# A notification another worker took this recently may still be in flight (its send has not
# returned): it is not retried until this long after that worker last touched it.
IN_FLIGHT_SECONDS = 300


def undelivered_attempts(*, before_run: RecoveryRun, max_tries: int) -> list[RecoveryAttempt]:
    """Earlier attempts whose notification is pending or failed and has tries left, oldest first.

    Failed ones at once; pending ones only when nobody touched them for IN_FLIGHT_SECONDS (a pending
    attempt just taken by another worker is being sent right now).
    """
    in_flight_since = timezone.now() - timedelta(seconds=IN_FLIGHT_SECONDS)
    return list(
        RecoveryAttempt.objects.filter(
            Q(notification_status=RecoveryAttempt.NotificationStatus.FAILED)
            | Q(notification_status=RecoveryAttempt.NotificationStatus.PENDING, updated_at__lt=in_flight_since),
            notification_tries__lt=max_tries,
        )
        .exclude(run=before_run)
        .select_related("session__invoice", "session__project")
        .order_by("created_at", "pk")
    )
