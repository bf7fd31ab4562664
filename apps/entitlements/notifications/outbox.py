"""Writing notifications into the outbox, in the caller's transaction.

The caller is the code that makes the change (the projection's recompute, later invoices and
recovery): its transaction writes the Notification and one Delivery per subscribed endpoint, so both
commit or roll back with the change. After commit, the fulfillment worker is woken to send them; the
worker's poll takes them anyway if that wake-up is lost (apps.entitlements.notifications.delivery).

A project with no endpoint that wants a type gets no rows for it: nobody would receive them, and the
event-processing path stays as cheap as before notifications existed. Entitlement versions grow
whether or not anyone listens, so that an endpoint registered later still sees increasing versions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.entitlements.notifications.models import (
    Delivery,
    EntitlementVersion,
    Notification,
    NotificationEndpoint,
)
from apps.projects.models import Project

ENTITLEMENTS_UPDATED = "entitlements.updated"
# The types a notification endpoint may ask for; later issues add theirs here.
NOTIFICATION_TYPES = (ENTITLEMENTS_UPDATED,)


@dataclass(frozen=True)
class Message:
    """One notification to write: what it is about (a user, or "") and its envelope's `data`."""

    user_id: str
    data: dict[str, Any]


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def entitlements_data(*, user_id: str, version: int, windows: Iterable[Any], now: dt.datetime) -> dict[str, Any]:
    """`entitlements.updated`'s data: the user's whole new set, in GET /entitlements's item shape."""
    rows = sorted(windows, key=lambda w: (w.feature_code, w.valid_from, w.source_id))
    return {
        "user_id": user_id,
        "version": version,
        "entitlements": [
            {
                "feature_code": w.feature_code,
                "active": w.covers(now),
                "source": w.source,
                "source_id": w.source_id,
                "valid_from": _iso(w.valid_from),
                "valid_to": _iso(w.valid_to),
            }
            for w in rows
        ],
    }


def entitlement_versions_bump(*, project: Project, user_ids: Sequence[str]) -> dict[str, int]:
    """+1 to each user's version, created at 1; one statement for all (PostgreSQL and SQLite alike).

    Called under the recompute's per-user locks, so two changes of one user get distinct versions in
    commit order.
    """
    if not user_ids:
        return {}
    table = EntitlementVersion._meta.db_table
    rows = ", ".join(["(%s, %s, 1)"] * len(user_ids))
    params: list[Any] = []
    for user_id in user_ids:
        params += [project.pk, user_id]
    sql = (
        f"INSERT INTO {table} (project_id, user_id, version) VALUES {rows} "  # noqa: S608 - our table name
        f"ON CONFLICT (project_id, user_id) DO UPDATE SET version = {table}.version + 1 "
        "RETURNING user_id, version"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {user_id: int(version) for user_id, version in cursor.fetchall()}


def subscribed_endpoints(*, project: Project, notification_type: str) -> list[NotificationEndpoint]:
    """The endpoints of the project's active apps that want this type, disabled ones included.

    A disabled endpoint's deliveries are held (pending, not claimed) until it is enabled again, or
    failed when their retry window ends: pausing an endpoint, or the service disabling it after a
    day of failures, loses nothing that changed meanwhile.
    """
    endpoints = NotificationEndpoint.objects.filter(app__project=project, app__active=True)
    return [endpoint for endpoint in endpoints if endpoint.wants(notification_type)]


def notifications_write(*, project: Project, notification_type: str, messages: Sequence[Message]) -> list[Notification]:
    """Writes the notifications and their deliveries in the caller's transaction; wakes the worker after commit."""
    if not messages:
        return []
    endpoints = subscribed_endpoints(project=project, notification_type=notification_type)
    if not endpoints:
        return []
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        notifications = Notification.objects.bulk_create(
            Notification(project=project, type=notification_type, user_id=m.user_id, data=m.data, created_at=now)
            for m in messages
        )
        Delivery.objects.bulk_create(
            Delivery(notification=n, endpoint=e, next_attempt_at=now, created_at=now)
            for n in notifications
            for e in endpoints
        )
        transaction.on_commit(_wake_worker)
    return notifications


def _wake_worker() -> None:
    # Imported here: the delivery module imports the HTTP client and the task machinery, which the
    # projection (and so every event) need not load.
    from apps.entitlements.notifications.wakeup import fulfillment_wake

    fulfillment_wake()
