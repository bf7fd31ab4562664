"""Delivery faults: retries with backoff, the retry window, disabling an endpoint, leases.

The issue's "Done means": a receiver answering 500, then timing out, then 200 gets the notification
once it recovers, with the attempts logged; one that never recovers ends `failed` and its endpoint is
disabled after its window; a worker killed mid-delivery leads to a redelivery with the same id.
The clock is moved with time-machine; the receiver is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.common.jobs.policy import backoff_seconds, policy_for
from apps.entitlements.notifications import wakeup
from apps.entitlements.notifications.claims import HELD_EXPIRED_ERROR, deliveries_claim
from apps.entitlements.notifications.delivery import (
    Outcome,
    Sent,
    attempts_record,
    fulfillment_config,
    outbound_prepare,
    outbound_send,
)
from apps.entitlements.notifications.health import JOB
from apps.entitlements.notifications.models import Delivery, DeliveryAttempt, NotificationEndpoint
from apps.entitlements.notifications.worker import fulfillment_run
from tests.conftest import Tenant
from tests.notifications.receiver import FAIL, ScriptedReceiver, endpoint_for, notifications_queue, slow, verifies

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _delivery() -> Delivery:
    return Delivery.objects.get()


def _failed_total() -> float:
    return REGISTRY.get_sample_value("billing_fulfillment_failed_total") or 0.0


def test_a_receiver_that_fails_then_times_out_then_recovers_gets_it_with_three_attempts_logged(
    alice: Tenant, settings: Any
) -> None:
    settings.FULFILLMENT_TIMEOUT_SECONDS = 0.5
    policy = policy_for(JOB)
    retried_before = REGISTRY.get_sample_value("billing_fulfillment_retried_total") or 0.0
    with ScriptedReceiver(FAIL, slow(1.5)) as receiver, time_machine.travel(T0, tick=False) as clock:
        endpoint = endpoint_for(alice, receiver)
        [notification] = notifications_queue(alice, "u1")

        assert fulfillment_run().retry_later == 1  # 500
        first = _delivery()
        assert (first.status, first.attempts, first.last_status_code, first.last_error) == (
            "pending",
            1,
            500,
            "HTTP 500",
        )
        wait = (first.next_attempt_at - timezone.now()).total_seconds()
        assert backoff_seconds(policy, 1) <= wait <= backoff_seconds(policy, 1) + policy.jitter_seconds
        assert fulfillment_run().claimed == 0  # not due before its backoff
        endpoint.refresh_from_db()
        assert endpoint.failing_since == T0

        clock.move_to(first.next_attempt_at)
        assert fulfillment_run().retry_later == 1  # the receiver sleeps past the timeout
        second = _delivery()
        assert second.attempts == 2 and second.last_status_code is None
        assert second.last_error == "timed out after 0.5s (ReadTimeout)"
        wait = (second.next_attempt_at - timezone.now()).total_seconds()
        assert backoff_seconds(policy, 2) <= wait <= backoff_seconds(policy, 2) + policy.jitter_seconds

        clock.move_to(second.next_attempt_at)
        assert fulfillment_run().delivered == 1  # recovered
    delivered = _delivery()
    assert delivered.status == Delivery.Status.DELIVERED and delivered.attempts == 3 and delivered.last_error == ""
    log = [(a.number, a.status_code, a.error != "") for a in DeliveryAttempt.objects.order_by("number")]
    assert log == [(1, 500, False), (2, None, True), (3, 200, False)]
    assert DeliveryAttempt.objects.get(number=1).response_body == '{"error":"the receiver was told to fail"}'
    # The same notification each time, each time signed; receivers dedupe by its id.
    assert receiver.notification_ids() == [notification.pk] * 3
    assert all(verifies(r, endpoint.secret, now=r.at) for r in receiver.received)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.enabled
    assert REGISTRY.get_sample_value("billing_fulfillment_retried_total") == retried_before + 2


def test_a_receiver_that_never_recovers_is_disabled_after_a_day_and_the_delivery_fails_after_three_days(
    alice: Tenant,
) -> None:
    policy = policy_for(JOB)
    failed_before = _failed_total()
    with ScriptedReceiver(then=FAIL) as receiver, time_machine.travel(T0, tick=False) as clock:
        endpoint = endpoint_for(alice, receiver)
        notifications_queue(alice, "u1")
        for _ in range(100):
            fulfillment_run()
            endpoint.refresh_from_db()
            if not endpoint.enabled:
                break
            clock.move_to(_delivery().next_attempt_at)
        attempts = list(DeliveryAttempt.objects.order_by("number"))
        # Exponential backoff with jitter between attempts: 30 s, 60 s, ... capped at an hour.
        for earlier, later in itertools.pairwise(attempts):
            gap = (later.attempted_at - earlier.attempted_at).total_seconds()
            assert backoff_seconds(policy, earlier.number) <= gap <= backoff_seconds(policy, earlier.number) + 30
        assert endpoint.enabled is False
        assert endpoint.failing_since == T0
        assert endpoint.disabled_at is not None and endpoint.disabled_at - T0 >= DAY
        assert endpoint.disabled_at - T0 < DAY + timedelta(seconds=policy.max_backoff_seconds + policy.jitter_seconds)
        assert "HTTP 500" in endpoint.disabled_reason
        assert _delivery().status == Delivery.Status.PENDING  # held, not given up

        sent = len(receiver.received)
        clock.move_to(T0 + 2 * DAY)
        assert fulfillment_run().claimed == 0  # a disabled endpoint's deliveries are not claimed
        assert len(receiver.received) == sent

        clock.move_to(T0 + 3 * DAY + timedelta(seconds=1))
        assert fulfillment_run().failed == 1  # the window is over
    failed = _delivery()
    assert failed.status == Delivery.Status.FAILED and failed.last_error == HELD_EXPIRED_ERROR
    assert failed.failed_at == T0 + 3 * DAY + timedelta(seconds=1)
    assert _failed_total() == failed_before + 1


def test_a_delivery_whose_next_retry_would_fall_after_the_window_is_failed(alice: Tenant, settings: Any) -> None:
    settings.FULFILLMENT_DISABLE_AFTER_SECONDS = 30 * 86400  # so that only the 3-day window applies
    policy = policy_for(JOB)
    with ScriptedReceiver(then=FAIL) as receiver, time_machine.travel(T0, tick=False) as clock:
        endpoint = endpoint_for(alice, receiver)
        notifications_queue(alice, "u1")
        for _ in range(200):
            fulfillment_run()
            delivery = _delivery()
            if delivery.status != Delivery.Status.PENDING:
                break
            clock.move_to(delivery.next_attempt_at)
    window_end = T0 + 3 * DAY
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.failed_at is not None and delivery.failed_at <= window_end
    # Failed at the last attempt whose retry could not land inside the window, not one attempt early.
    assert delivery.failed_at + timedelta(seconds=backoff_seconds(policy, delivery.attempts)) > window_end - timedelta(
        seconds=policy.jitter_seconds
    )
    assert len(receiver.received) == delivery.attempts == DeliveryAttempt.objects.count()
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_a_worker_killed_mid_delivery_leads_to_a_redelivery_with_the_same_id(alice: Tenant) -> None:
    lease = fulfillment_config().lease_seconds
    with ScriptedReceiver() as receiver, time_machine.travel(T0, tick=False) as clock:
        endpoint_for(alice, receiver)
        [notification] = notifications_queue(alice, "u1")
        # The doomed worker claims, sends, and dies before it records the answer.
        claim = deliveries_claim(limit=10, now=timezone.now(), lease_seconds=lease)
        with httpx.Client() as client:
            outbound_send(client, outbound_prepare(claim.deliveries[0], now=timezone.now()), timeout_seconds=5)

        assert fulfillment_run().claimed == 0  # its lease still holds the delivery
        clock.shift(timedelta(seconds=lease + 1))
        assert fulfillment_run().delivered == 1
    assert receiver.notification_ids() == [notification.pk, notification.pk]
    assert [r.json()["id"] for r in receiver.received] == [notification.pk, notification.pk]
    assert _delivery().status == Delivery.Status.DELIVERED
    assert DeliveryAttempt.objects.count() == 1  # only the live worker's attempt is on record


def test_a_worker_overtaken_after_its_lease_records_nothing(alice: Tenant) -> None:
    config = fulfillment_config()
    with ScriptedReceiver(FAIL) as receiver, time_machine.travel(T0, tick=False) as clock:
        endpoint_for(alice, receiver)
        notifications_queue(alice, "u1")
        slow_claim = deliveries_claim(limit=10, now=timezone.now(), lease_seconds=config.lease_seconds)
        outbound = outbound_prepare(slow_claim.deliveries[0], now=timezone.now())
        with httpx.Client() as client:
            late_result = outbound_send(client, outbound, timeout_seconds=5)  # a 500
        clock.shift(timedelta(seconds=config.lease_seconds + 1))
        assert fulfillment_run().delivered == 1  # another worker took it over and delivered it

        [recorded] = attempts_record(
            [Sent(outbound, late_result)], lease_until=slow_claim.lease_until, policy=policy_for(JOB), config=config
        )
    assert recorded.outcome == Outcome.LOST
    assert _delivery().status == Delivery.Status.DELIVERED
    assert [a.status_code for a in DeliveryAttempt.objects.all()] == [200]


def test_a_batch_whose_lease_runs_short_hands_the_rest_back_and_sends_each_once(alice: Tenant, settings: Any) -> None:
    # A send may start until lease - timeout - 2 s = 1 s after the claim; each answer takes 1.2 s,
    # so of a batch of 20 only the first 8 (the pool's size) start in time.
    settings.FULFILLMENT_TIMEOUT_SECONDS = 2.0
    settings.FULFILLMENT_LEASE_SECONDS = 5
    with ScriptedReceiver(then=slow(1.2)) as receiver:
        endpoint_for(alice, receiver)
        notifications = notifications_queue(alice, *(f"u{i}" for i in range(20)))
        summary = fulfillment_run()
    assert summary.released >= 4
    assert summary.delivered == 20 and summary.batches >= 2
    assert sorted(receiver.notification_ids()) == sorted(n.pk for n in notifications)  # each once
    assert DeliveryAttempt.objects.count() == 20


def test_one_slow_receiver_does_not_stall_the_batch(alice: Tenant, settings: Any) -> None:
    settings.FULFILLMENT_TIMEOUT_SECONDS = 3.0
    with ScriptedReceiver(then=slow(1.0)) as slow_receiver, ScriptedReceiver() as fast_receiver:
        slow_endpoint = endpoint_for(alice, slow_receiver)
        fast_endpoint = endpoint_for(alice, fast_receiver)
        notifications_queue(alice, "u1", "u2", "u3")
        started = time.monotonic()
        assert fulfillment_run().delivered == 6
        elapsed = time.monotonic() - started
    fast = Delivery.objects.filter(endpoint=fast_endpoint).values_list("delivered_at", flat=True)
    slow_ones = Delivery.objects.filter(endpoint=slow_endpoint).values_list("delivered_at", flat=True)
    assert max(d for d in fast if d) < min(d for d in slow_ones if d)
    assert elapsed < 2.9  # the three slow answers overlapped (one after the other would take 3 s)


# --- several workers -------------------------------------------------------------------------------


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_the_rows_another_worker_holds_instead_of_waiting(
    alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakeup, "fulfillment_wake", lambda: None)  # no worker runs on commit
    NotificationEndpoint.objects.create(app=alice.app, url="http://127.0.0.1:9/unused")
    notifications_queue(alice, *(f"u{i}" for i in range(40)))
    held, done = threading.Event(), threading.Event()
    first_ids: list[int] = []

    def first_worker() -> None:
        try:
            # Its claim's locks are held until this outer transaction ends.
            with transaction.atomic():
                claim = deliveries_claim(limit=15, now=timezone.now(), lease_seconds=60)
                first_ids.extend(d.pk for d in claim.deliveries)
                held.set()
                done.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        second = deliveries_claim(limit=15, now=timezone.now(), lease_seconds=60)
        waited = time.monotonic() - started
    finally:
        done.set()
        thread.join(15)
    second_ids = [d.pk for d in second.deliveries]
    assert len(first_ids) == len(second_ids) == 15
    assert not set(first_ids) & set(second_ids)
    assert waited < 2  # SKIP LOCKED: without it this claim would wait for the other transaction


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_queue_and_send_each_notification_once(
    alice: Tenant, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setattr(wakeup, "fulfillment_wake", lambda: None)
    settings.FULFILLMENT_BATCH_SIZE = 10
    with ScriptedReceiver(then=slow(0.05)) as receiver:
        endpoint_for(alice, receiver)
        notifications = notifications_queue(alice, *(f"u{i}" for i in range(60)))
        start = threading.Barrier(2)
        claimed: dict[str, int] = {}

        def worker(name: str) -> None:
            try:
                start.wait(10)
                claimed[name] = fulfillment_run().claimed
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(receiver.notification_ids()) == sorted(n.pk for n in notifications)  # each exactly once
    assert claimed["a"] + claimed["b"] == 60 and claimed["a"] > 0 and claimed["b"] > 0
    assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 60
