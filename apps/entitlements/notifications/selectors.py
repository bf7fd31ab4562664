"""Reads of notification endpoints, notifications and deliveries, always within one app or project."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db.models import Prefetch, QuerySet

from apps.entitlements.notifications.models import Delivery, DeliveryAttempt, Notification, NotificationEndpoint


def endpoint_list(*, app_id: int) -> QuerySet[NotificationEndpoint]:
    return NotificationEndpoint.objects.filter(app_id=app_id)


def endpoint_get(*, app_id: int, endpoint_id: int) -> NotificationEndpoint | None:
    return NotificationEndpoint.objects.filter(app_id=app_id, pk=endpoint_id).first()


def endpoint_get_for_project(*, project_id: int, endpoint_id: int) -> NotificationEndpoint | None:
    """One endpoint of any app of the project (a replay may name one)."""
    return NotificationEndpoint.objects.filter(app__project_id=project_id, pk=endpoint_id).first()


def endpoint_count(*, app_id: int) -> int:
    return NotificationEndpoint.objects.filter(app_id=app_id).count()


def delivery_list(*, endpoint_id: int, status: str | None = None) -> QuerySet[Delivery]:
    """An endpoint's deliveries with their notification and attempt log (one query each per page)."""
    deliveries = Delivery.objects.filter(endpoint_id=endpoint_id)
    if status is not None:
        deliveries = deliveries.filter(status=status)
    return deliveries.select_related("notification").prefetch_related(
        Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("number"))
    )


def notifications_select(
    *,
    project_id: int | None,
    notification_ids: Sequence[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    types: Sequence[str] | None = None,
) -> QuerySet[Notification]:
    """The notifications a replay names: by id, or by creation window and types; None: every project."""
    rows = Notification.objects.all()
    if project_id is not None:
        # A key's replay reaches only its own project's notifications; other ids are ignored.
        rows = rows.filter(project_id=project_id)
    if notification_ids is not None:
        rows = rows.filter(pk__in=list(notification_ids))
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    if types:
        rows = rows.filter(type__in=list(types))
    return rows.order_by("created_at", "id")
