"""Delivering a notification: the signature, the signed POST a receiver gets, the attempt log, and
the wake-up on commit. (Faults, retries and leases: test_delivery_faults.py.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.entitlements.grants import grant_create
from apps.entitlements.notifications import wakeup
from apps.entitlements.notifications.models import Delivery, DeliveryAttempt, Notification, NotificationEndpoint
from apps.entitlements.notifications.signing import signature_header, signature_verify, signing_secrets
from apps.entitlements.notifications.worker import fulfillment_run
from billing_service.celery import app as celery_app
from tests.conftest import Tenant, committed
from tests.notifications.receiver import ScriptedReceiver, endpoint_for, notifications_queue, verifies

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[ScriptedReceiver]:
    with ScriptedReceiver() as running:
        yield running


def _counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


# --- the signature ---------------------------------------------------------------------------------


def test_the_header_is_t_then_one_v1_hmac_of_t_dot_body() -> None:
    body = b'{"id":"ntf_1"}'
    header = signature_header(body=body, secrets=["whsec_a"], timestamp=1_700_000_000)
    assert re.fullmatch(r"t=1700000000,v1=[0-9a-f]{64}", header)
    expected = hmac.new(b"whsec_a", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header.endswith(f"v1={expected}")
    assert signature_verify(body=body, header=header, secret="whsec_a", now=1_700_000_010)
    assert not signature_verify(body=body + b" ", header=header, secret="whsec_a", now=1_700_000_010)
    assert not signature_verify(body=body, header=header, secret="whsec_b", now=1_700_000_010)
    # Outside the tolerance a valid signature is a replay.
    assert not signature_verify(body=body, header=header, secret="whsec_a", now=1_700_000_000 + 301)


def test_two_v1_during_the_rotation_overlap_and_one_after(alice: Tenant) -> None:
    endpoint = NotificationEndpoint.objects.create(
        app=alice.app,
        url="https://alpha.example/hook",
        secret="whsec_new",
        previous_secret="whsec_old",
        previous_secret_expires_at=T0 + timedelta(hours=1),
    )
    assert signing_secrets(endpoint, now=T0) == ["whsec_new", "whsec_old"]
    header = signature_header(body=b"{}", secrets=signing_secrets(endpoint, now=T0), timestamp=int(T0.timestamp()))
    assert header.count("v1=") == 2
    for secret in ("whsec_new", "whsec_old"):
        assert signature_verify(body=b"{}", header=header, secret=secret, now=T0.timestamp())

    later = T0 + timedelta(hours=1, seconds=1)
    assert signing_secrets(endpoint, now=later) == ["whsec_new"]
    header = signature_header(
        body=b"{}", secrets=signing_secrets(endpoint, now=later), timestamp=int(later.timestamp())
    )
    assert header.count("v1=") == 1
    assert not signature_verify(body=b"{}", header=header, secret="whsec_old", now=later.timestamp())


# --- the happy path --------------------------------------------------------------------------------


def test_the_receiver_gets_the_signed_envelope_and_the_attempt_is_logged(
    alice: Tenant, receiver: ScriptedReceiver
) -> None:
    endpoint = endpoint_for(alice, receiver)
    [notification] = notifications_queue(alice, "u1")
    delivered_before = _counter("billing_fulfillment_delivered_total")

    summary = fulfillment_run()

    assert (summary.claimed, summary.delivered, summary.retry_later, summary.failed) == (1, 1, 0, 0)
    [request] = receiver.received
    assert request.json() == notification.envelope()
    assert request.json()["data"] == {"user_id": "u1", "version": 1, "entitlements": []}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "billing-service/notifications"
    assert request.notification_id == notification.pk
    assert verifies(request, endpoint.secret)
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.DELIVERED
    assert delivery.attempts == 1 and delivery.delivered_at is not None and delivery.last_status_code == 200
    [attempt] = DeliveryAttempt.objects.all()
    assert (attempt.number, attempt.status_code, attempt.response_body, attempt.error) == (1, 200, '{"ok":true}', "")
    assert attempt.succeeded and attempt.duration_ms < 5000
    assert _counter("billing_fulfillment_delivered_total") == delivered_before + 1
    # Delivered is delivered: a second run sends nothing.
    assert fulfillment_run().claimed == 0
    assert len(receiver.received) == 1


def test_each_endpoint_gets_only_the_types_it_wants_and_a_disabled_one_gets_nothing(
    alice: Tenant, receiver: ScriptedReceiver
) -> None:
    wants_all = endpoint_for(alice, receiver)
    endpoint_for(alice, receiver, event_types=["invoice.paid"])
    disabled = endpoint_for(alice, receiver)
    notifications_queue(alice, "u1")
    NotificationEndpoint.objects.filter(pk=disabled.pk).update(enabled=False)

    fulfillment_run()

    assert len(receiver.received) == 1
    assert Delivery.objects.get(status=Delivery.Status.DELIVERED).endpoint_id == wants_all.pk
    # The disabled endpoint's delivery is held, pending, not claimed.
    assert Delivery.objects.get(endpoint=disabled).status == Delivery.Status.PENDING


def test_a_grant_notifies_the_new_entitlements_with_a_growing_version(
    alice: Tenant, receiver: ScriptedReceiver
) -> None:
    endpoint = endpoint_for(alice, receiver)
    alice.project.feature_codes = ["labs"]
    alice.project.save(update_fields=["feature_codes"])

    grant_create(project=alice.project, user_id="u9", feature_code="labs", granted_by="t", reason="r")
    grant_create(project=alice.project, user_id="u9", feature_code="labs", granted_by="t", reason="r")
    fulfillment_run()

    bodies = sorted((r.json() for r in receiver.received), key=lambda b: b["data"]["version"])
    assert [b["data"]["version"] for b in bodies] == [1, 2]
    assert bodies[0]["type"] == "entitlements.updated" and bodies[0]["project_id"] == alice.project.pk
    [entitlement] = bodies[0]["data"]["entitlements"]
    assert entitlement["feature_code"] == "labs" and entitlement["active"] is True
    assert all(verifies(r, endpoint.secret) for r in receiver.received)


@pytest.mark.django_db(transaction=True)
def test_nothing_is_sent_while_the_worker_holds_a_transaction(alice: Tenant) -> None:
    worker_connection = connections["default"]  # this thread's: the wake-up runs the worker here
    seen: list[bool] = []

    class Watching(ScriptedReceiver):
        def answer(self, number: int) -> tuple[int, float]:
            seen.append(worker_connection.in_atomic_block)
            return super().answer(number)

    with Watching() as watching:
        endpoint_for(alice, watching)
        # One notification per commit, so that one send is in flight at a time: the claim's
        # transaction is closed before it, the record's opens after it.
        for user in ("u1", "u2", "u3"):
            notifications_queue(alice, user)  # commits (no test transaction): the wake-up runs the worker
    assert seen == [False, False, False]
    assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 3


# --- the wake-up on commit -------------------------------------------------------------------------


def test_a_commit_that_queues_notifications_wakes_the_worker(alice: Tenant, receiver: ScriptedReceiver) -> None:
    endpoint_for(alice, receiver)
    with committed():
        [notification] = notifications_queue(alice, "u1")
    # Eager mode (the suite's): the wake-up ran the worker in this thread, after the commit.
    assert receiver.notification_ids() == [notification.pk]
    assert Delivery.objects.get().status == Delivery.Status.DELIVERED


def test_no_commit_no_wake_up(alice: Tenant, receiver: ScriptedReceiver) -> None:
    endpoint_for(alice, receiver)
    notifications_queue(alice, "u1")  # the test's transaction never commits
    assert receiver.received == []


def test_a_burst_of_commits_publishes_once_off_the_committing_thread(
    alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[str] = []
    monkeypatch.setattr(wakeup, "_publish", lambda: published.append(threading.current_thread().name))
    NotificationEndpoint.objects.create(app=alice.app, url="http://127.0.0.1:9/never")
    celery_app.conf.task_always_eager = False  # as in a web process: the waker thread publishes
    try:
        for i in range(10):
            with committed():
                notifications_queue(alice, f"u{i}")
    finally:
        celery_app.conf.task_always_eager = True
    deadline = time.monotonic() + 5
    while not published and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(wakeup.WAKE_DEBOUNCE_SECONDS * 3)
    assert 1 <= len(published) <= 2
    assert set(published) == {"fulfillment-waker"}


def test_a_broker_failure_never_reaches_the_committing_code(alice: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.entitlements import tasks

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver, "apply_async", broker_down)
    NotificationEndpoint.objects.create(app=alice.app, url="http://127.0.0.1:9/never")
    failed_before = REGISTRY.get_sample_value("billing_fulfillment_wakeups_total", {"outcome": "failed"}) or 0.0
    with committed():
        notifications_queue(alice, "u1")
    # The notification is stored and waits for beat's poll.
    assert Delivery.objects.get().status == Delivery.Status.PENDING
    assert REGISTRY.get_sample_value("billing_fulfillment_wakeups_total", {"outcome": "failed"}) == failed_before + 1


def test_the_body_is_the_envelope_as_compact_json(alice: Tenant, receiver: ScriptedReceiver) -> None:
    endpoint_for(alice, receiver)
    [notification] = notifications_queue(alice, "u1")
    fulfillment_run()
    body = receiver.received[0].body
    assert body == json.dumps(Notification.objects.get(pk=notification.pk).envelope(), separators=(",", ":")).encode()
    assert Notification.objects.get().created_at <= timezone.now()
