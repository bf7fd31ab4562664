"""The deliveries as a queue: claiming the due ones under a lease, handing back unsent ones, and
failing those held by a disabled endpoint once their retry window is over.

A claim is one short transaction: the oldest pending deliveries due now whose endpoint is enabled,
locked FOR UPDATE SKIP LOCKED (two workers claiming at once take disjoint rows instead of waiting on
each other), their next_attempt_at pushed to the end of the lease, commit. Nothing is sent inside
it. While the lease lasts no other claim sees the rows (they are not due); the worker records each
attempt only if the row still carries its lease (apps.entitlements.notifications.delivery). A
worker killed mid-send simply lets the lease run out: the next claim takes the delivery again and
the receiver gets the same notification id a second time (it dedupes by id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet

from apps.entitlements.notifications.models import Delivery

Status = Delivery.Status
HELD_EXPIRED_ERROR = "its endpoint was disabled until the retry window ended"


@dataclass(frozen=True)
class Claim:
    lease_until: datetime  # the next_attempt_at every claimed row carries while it is ours
    deliveries: list[Delivery]


def _due(*, now: datetime, endpoint_id: int | None) -> QuerySet[Delivery]:
    """Pending, due now, to an enabled endpoint: the partial index on pending next_attempt_at serves it."""
    due = Delivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now, endpoint__enabled=True)
    return due if endpoint_id is None else due.filter(endpoint_id=endpoint_id)


def deliveries_claim(*, limit: int, now: datetime, lease_seconds: int, endpoint_id: int | None = None) -> Claim:
    """Claims up to `limit` due deliveries, oldest due first, with their notification and endpoint.

    `endpoint_id` restricts the claim to one endpoint (the smoke test's, so that it sends nothing else).
    """
    lease_until = now + timedelta(seconds=lease_seconds)
    due = _due(now=now, endpoint_id=endpoint_id)
    with transaction.atomic():
        # SKIP LOCKED on PostgreSQL; SQLite (one writer at a time, no row locks) ignores the clause,
        # and the conditional UPDATE below keeps two claimers from taking one row there.
        ids = list(
            due.order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return Claim(lease_until, [])
        Delivery.objects.filter(pk__in=ids, status=Status.PENDING, next_attempt_at__lte=now).update(
            next_attempt_at=lease_until
        )
    rows = (
        Delivery.objects.filter(pk__in=ids, status=Status.PENDING, next_attempt_at=lease_until)
        .select_related("notification", "endpoint")
        .order_by("notification__created_at", "id")
    )
    return Claim(lease_until, list(rows))


def deliveries_release(*, ids: list[int], lease_until: datetime, now: datetime) -> int:
    """Hands claimed, unsent deliveries back (due now), where the lease is still ours."""
    if not ids:
        return 0
    return Delivery.objects.filter(pk__in=ids, status=Status.PENDING, next_attempt_at=lease_until).update(
        next_attempt_at=now
    )


def deliveries_due(*, now: datetime, endpoint_id: int | None = None) -> bool:
    """Whether a delivery is due now."""
    return _due(now=now, endpoint_id=endpoint_id).exists()


def held_deliveries_expire(*, now: datetime, window_seconds: int) -> int:
    """Fails the pending deliveries of disabled endpoints whose retry window has ended; how many.

    Set-based: disabled endpoints are few, and their deliveries are found through the endpoint's index.
    """
    cutoff = now - timedelta(seconds=window_seconds)
    return Delivery.objects.filter(status=Status.PENDING, endpoint__enabled=False, created_at__lte=cutoff).update(
        status=Status.FAILED, failed_at=now, last_error=HELD_EXPIRED_ERROR
    )
