"""Receiving the service's signed notifications: verify, dedupe by id, apply to the cache.

Delivery is at least once and not ordered: the same id may come twice (dropped here the second time),
and an older version of a user's entitlements may arrive after a newer one (the cache drops it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from billing_client import signing
from billing_client.cache import EntitlementCache
from billing_client.errors import InvalidNotification
from billing_client.models import (
    Entitlement,
    Notification,
    NotificationOutcome,
    entitlements_from_json,
    parse_instant,
    version_from_json,
)

logger = logging.getLogger("billing_client")

ENTITLEMENTS_UPDATED = "entitlements.updated"
NotificationCallback = Callable[[Notification], None]


class RecentIds:
    """The ids handled lately, oldest forgotten first: enough to drop the redeliveries of a retry burst."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, notification_id: object) -> bool:
        with self._lock:
            return notification_id in self._ids

    def add(self, notification_id: str) -> None:
        with self._lock:
            self._ids[notification_id] = None
            self._ids.move_to_end(notification_id)
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)


def parse_envelope(body: bytes) -> Notification:
    """The envelope {"id", "type", "created", "project_id", "data"}; InvalidNotification if it is not one."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidNotification("the notification body is not JSON") from exc
    if not isinstance(raw, dict):
        raise InvalidNotification("the notification body is not a JSON object")
    try:
        notification_id, kind, data = raw["id"], raw["type"], raw["data"]
        project_id = raw["project_id"]
        created = parse_instant(raw["created"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidNotification(f"the notification envelope is incomplete or malformed: {exc}") from exc
    if not isinstance(notification_id, str) or not isinstance(kind, str) or not isinstance(data, dict):
        raise InvalidNotification("the notification's id and type must be strings and its data an object")
    if not isinstance(project_id, int | str) or isinstance(project_id, bool):
        raise InvalidNotification("the notification's project_id must be an integer")
    return Notification(id=notification_id, type=kind, created=created, project_id=project_id, data=data, raw=raw)


class NotificationReceiver:
    def __init__(
        self,
        *,
        project_id: int | str,
        secrets: str | Sequence[str],
        tolerance: float,
        cache: EntitlementCache,
        on_notification: NotificationCallback | None,
        remember_ids: int,
    ) -> None:
        self._project_id = str(project_id)
        self._secrets = signing.normalise_secrets(secrets)
        self._tolerance = tolerance
        self._cache = cache
        self._on_notification = on_notification
        self._seen = RecentIds(remember_ids)

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Notification:
        signing.verify(body, signing.header_value(headers), self._secrets, tolerance=self._tolerance, now=time.time())
        notification = parse_envelope(body)
        if str(notification.project_id) != self._project_id:
            logger.warning(
                "billing_client ignored notification %s of project %s (this client is project %s)",
                notification.id,
                notification.project_id,
                self._project_id,
            )
            return replace(notification, outcome="other_project")
        if notification.id in self._seen:
            return replace(notification, outcome="duplicate")
        notification = replace(notification, outcome=self._apply(notification))
        if self._on_notification is not None:
            self._on_notification(notification)
        # Remembered only once fully handled: if the callback raised, the redelivery runs it again.
        self._seen.add(notification.id)
        return notification

    def _apply(self, notification: Notification) -> NotificationOutcome:
        if notification.type != ENTITLEMENTS_UPDATED:
            return "unhandled"
        user_id, version, entitlements = _entitlements_update(notification.data)
        stored = self._cache.store_pushed(user_id, entitlements, version)
        logger.debug(
            "billing_client notification %s: user %s version %d %s",
            notification.id,
            user_id,
            version,
            "applied" if stored else "older than the cache, dropped",
        )
        return "applied" if stored else "stale"


def _entitlements_update(data: Mapping[str, Any]) -> tuple[str, int, tuple[Entitlement, ...]]:
    try:
        user_id = data["user_id"]
        version = version_from_json(data["version"])
        entitlements = entitlements_from_json(data["entitlements"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidNotification(f"entitlements.updated data is malformed: {exc}") from exc
    if not isinstance(user_id, str):
        raise InvalidNotification("entitlements.updated data has no user_id string")
    return user_id, version, entitlements
