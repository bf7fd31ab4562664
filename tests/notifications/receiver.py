"""A notification receiver for tests: a threaded HTTP server on 127.0.0.1 that records every POST and
answers from a script (a 500, a slow answer past the worker's timeout, a 200), then 200s.

    with ScriptedReceiver(FAIL, slow(2.0)) as receiver:    # 500, then 200 after 2 s, then 200s
        endpoint = endpoint_for(tenant, receiver)
        ...
        assert receiver.received[0].notification_id == notification.pk

It is apps.entitlements.notifications.smoke.LocalReceiver (the smoke command's) with a script.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from apps.entitlements.notifications.models import Notification, NotificationEndpoint
from apps.entitlements.notifications.outbox import ENTITLEMENTS_UPDATED, Message, notifications_write
from apps.entitlements.notifications.signing import signature_verify
from apps.entitlements.notifications.smoke import LocalReceiver, Received
from tests.conftest import Tenant

Answer = tuple[int, float]  # (status, seconds to wait before answering)
OK: Answer = (200, 0.0)
FAIL: Answer = (500, 0.0)


def slow(seconds: float, status: int = 200) -> Answer:
    return (status, seconds)


class ScriptedReceiver(LocalReceiver):
    """Answers the n-th request with the script's n-th answer, and every later one with `then`."""

    def __init__(self, *script: Answer, then: Answer = OK) -> None:
        super().__init__()
        self._script: deque[Answer] = deque(script)
        self.then = then

    def script(self, *answers: Answer) -> None:
        """Appends answers (the receiver's lock is held while they are read)."""
        self._script.extend(answers)

    def answer(self, number: int) -> Answer:
        return self._script.popleft() if self._script else self.then


def endpoint_for(tenant: Tenant, receiver: LocalReceiver, **fields: Any) -> NotificationEndpoint:
    """An endpoint of the tenant's app that posts to `receiver` (the ORM, as the outbox reads it)."""
    return NotificationEndpoint.objects.create(app=tenant.app, url=receiver.url, **fields)


def verifies(request: Received, secret: str, *, now: float | None = None) -> bool:
    return signature_verify(
        body=request.body, header=request.signature, secret=secret, now=time.time() if now is None else now
    )


def notifications_queue(tenant: Tenant, *user_ids: str) -> list[Notification]:
    """`entitlements.updated` for each user, written by the outbox as a recompute would (deliveries to
    every subscribed endpoint of the tenant's project), in the test's transaction."""
    return notifications_write(
        project=tenant.project,
        notification_type=ENTITLEMENTS_UPDATED,
        messages=[
            Message(user_id=user_id, data={"user_id": user_id, "version": 1, "entitlements": []})
            for user_id in user_ids
        ],
    )
