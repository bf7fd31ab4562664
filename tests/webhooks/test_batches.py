"""Issue 14, items 2 and 3: the ledger is the queue, and a drain processes it in batches.

The ack only stores and commits (the wake-up is a flag a background thread publishes once per
burst); a drain claims up to WEBHOOK_BATCH_SIZE `received` rows, processes them in one transaction
with a savepoint each, and recomputes each (project, user) once per batch.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.utils import timezone

from apps.common.locks import session_lock
from apps.common.models import AuditLog
from apps.entitlements import projection
from apps.entitlements.models import Entitlement, SubscriptionRecord
from apps.entitlements.selectors import entitlement_check
from apps.webhooks import registry, wakeup
from apps.webhooks.claims import ledger_claim, ledger_queue_state
from apps.webhooks.drain import ledger_drain
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.registry import Outcome, StripeEvent
from billing_service.beat_schedule import scheduled_task_for
from billing_service.celery import app as celery_app
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant, committed
from tests.entitlements.conftest import subscription_snapshot
from tests.factories import PriceFeatureFactory
from tests.sandbox_objects import sandbox_subscription
from tests.transaction_guard import StripeRequests, stripe_requests
from tests.webhooks.conftest import EFFECT, deliver, effects, make_event

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

T0 = int(time.time()) - 3600


@pytest.fixture
def no_wakeup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries whose wake-up is lost. Needed where commits are real (transaction=True): there the
    wake-up would run the drain at once (eager mode) and leave nothing for the test to claim."""
    from apps.webhooks import receive

    monkeypatch.setattr(receive, "ledger_wake", lambda: None)


def _stored(client: Client, *event_ids: str) -> list[ProcessorEvent]:
    """Deliveries whose wake-up never runs (no committed()): the rows wait in `received`."""
    for event_id in event_ids:
        assert deliver(client, make_event(event_id)).status_code == 200
    return list(ProcessorEvent.objects.filter(stripe_event_id__in=event_ids).order_by("pk"))


def _sub_event(event_id: str, sub_id: str, user_id: str, created: int, **fields: Any) -> dict[str, Any]:
    snapshot = subscription_snapshot(sub_id, user_id=user_id, start=T0, period_end=T0 + 30 * 86400, **fields)
    return make_event(event_id, "customer.subscription.updated", created=created, obj=snapshot)


@pytest.mark.django_db
def test_a_drain_processes_every_waiting_row_in_batches_of_the_configured_size(
    client: Client, effect_handler: Any, settings: Any
) -> None:
    settings.WEBHOOK_BATCH_SIZE = 2
    _stored(client, "evt_b1", "evt_b2", "evt_b3", "evt_b4", "evt_b5")
    summary = ledger_drain()
    assert (summary.batches, summary.claimed, summary.done, summary.failed) == (3, 5, 5, 0)
    assert set(ProcessorEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert set(ProcessorEvent.objects.values_list("attempts", flat=True)) == {1}
    assert effects() == 5
    # Nothing left: a second drain claims nothing and no effect repeats.
    assert ledger_drain().claimed == 0
    assert effects() == 5


@pytest.mark.django_db
def test_a_delivery_wakes_a_drain_that_processes_the_rows_waiting_before_it(
    client: Client, effect_handler: Any
) -> None:
    _stored(client, "evt_waiting")  # its wake-up was lost
    with committed():
        deliver(client, make_event("evt_wakes"))
    assert dict(ProcessorEvent.objects.values_list("stripe_event_id", "status")) == {
        "evt_waiting": "processed",
        "evt_wakes": "processed",
    }


@pytest.mark.django_db
def test_a_failing_event_rolls_back_alone_and_is_retried_by_process_event(
    client: Client, handlers: dict[str, Any]
) -> None:
    calls: list[str] = []

    @registry.handles("test.thing")
    def flaky_once(event: StripeEvent) -> Outcome:
        calls.append(event.id)
        AuditLog.objects.create(actor="test", action=EFFECT, target=event.id)
        if event.id == "evt_f2" and calls.count("evt_f2") == 1:
            raise RuntimeError("boom after the write")
        return Outcome("processed")

    _stored(client, "evt_f1", "evt_f2", "evt_f3")
    summary = ledger_drain()
    assert (summary.claimed, summary.done, summary.failed) == (3, 2, 1)
    rows = {row.stripe_event_id: row for row in ProcessorEvent.objects.all()}
    # Its neighbours committed; its own write rolled back with its savepoint. In eager mode the
    # retry process_event was given ran at once (a worker runs it RETRY_AFTER_SECONDS later).
    assert [rows[e].status for e in ("evt_f1", "evt_f2", "evt_f3")] == ["processed"] * 3
    assert rows["evt_f2"].attempts == 2
    assert calls == ["evt_f1", "evt_f2", "evt_f3", "evt_f2"]
    assert effects("evt_f1") == effects("evt_f2") == effects("evt_f3") == 1


@pytest.mark.django_db
def test_rows_are_applied_in_the_order_they_arrived(client: Client, handlers: dict[str, Any]) -> None:
    seen: list[str] = []

    @registry.handles("test.thing")
    def record(event: StripeEvent) -> Outcome:
        seen.append(event.id)
        return Outcome("processed")

    # Stripe's `created` says otherwise: the ledger's order is the one one-at-a-time processing had.
    for event_id, created in (("evt_o1", T0 + 30), ("evt_o2", T0 + 10), ("evt_o3", T0 + 20)):
        deliver(client, make_event(event_id, created=created))
    ledger_drain()
    assert seen == ["evt_o1", "evt_o2", "evt_o3"]


@pytest.mark.django_db
def test_each_user_is_recomputed_once_per_batch(client: Client, alice: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    recomputed: list[list[str]] = []
    real = projection.entitlements_recompute_many

    def spy(*, project: Any, user_ids: Any) -> Any:
        recomputed.append(sorted(user_ids))
        return real(project=project, user_ids=user_ids)

    monkeypatch.setattr(projection, "entitlements_recompute_many", spy)
    # Three events about u-a's subscription (trialing, active, past_due), one about u-b's.
    deliver(client, _sub_event("evt_r1", "sub_a", "u-a", T0 + 10, status="trialing"))
    deliver(client, _sub_event("evt_r2", "sub_a", "u-a", T0 + 20, status="active"))
    deliver(client, _sub_event("evt_r3", "sub_b", "u-b", T0 + 20, status="active"))
    deliver(client, _sub_event("evt_r4", "sub_a", "u-a", T0 + 30, status="active", cancel_at_period_end=True))
    assert ledger_drain().done == 4
    assert recomputed == [["u-a", "u-b"]]
    assert SubscriptionRecord.objects.get(stripe_subscription_id="sub_a").last_event_id == "evt_r4"
    for user in ("u-a", "u-b"):
        assert entitlement_check(project_id=alice.project.pk, user_id=user, feature_code="pro")[0] is True
    assert Entitlement.objects.filter(project=alice.project).count() == 2


@pytest.mark.django_db
def test_the_batched_recompute_writes_what_one_recompute_per_event_writes(client: Client, alice: Tenant) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    deliver(client, _sub_event("evt_w1", "sub_w1", "u-w1", T0 + 10, status="active"))
    deliver(client, _sub_event("evt_w2", "sub_w2", "u-w2", T0 + 10, status="incomplete"))
    ledger_drain()
    batched = sorted(Entitlement.objects.values_list("user_id", "feature_code", "source", "valid_from", "valid_to"))
    Entitlement.objects.all().delete()
    for user in ("u-w1", "u-w2"):
        projection.entitlements_recompute(project=alice.project, user_id=user)
    single = sorted(Entitlement.objects.values_list("user_id", "feature_code", "source", "valid_from", "valid_to"))
    assert batched == single
    assert [row[0] for row in batched] == ["u-w1"]  # an incomplete subscription entitles nothing


@pytest.mark.django_db
def test_an_ack_publishes_nothing_on_the_request_thread(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[str] = []
    monkeypatch.setattr(wakeup, "_publish", lambda: published.append(threading.current_thread().name))
    celery_app.conf.task_always_eager = False  # as in a web process: the waker thread publishes
    try:
        with committed():
            for i in range(20):
                assert deliver(client, make_event(f"evt_burst_{i}")).status_code == 200
    finally:
        celery_app.conf.task_always_eager = True
    deadline = time.monotonic() + 5
    while not published and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(wakeup.WAKE_DEBOUNCE_SECONDS * 3)
    # One burst, one publish (two at most, when the burst straddles a debounce window), and never
    # from the thread that answered Stripe.
    assert 1 <= len(published) <= 2
    assert set(published) == {"ledger-waker"}


@pytest.mark.django_db
def test_the_queue_depth_and_oldest_age_are_exported(client: Client, effect_handler: Any) -> None:
    rows = _stored(client, "evt_q1", "evt_q2")
    ProcessorEvent.objects.filter(pk=rows[0].pk).update(received_at=timezone.now() - timedelta(seconds=90))
    state = ledger_queue_state()
    assert state.depth == 2
    scrape = client.get("/metrics").content.decode()
    assert "billing_webhook_queue_depth 2.0" in scrape
    age = next(line for line in scrape.splitlines() if line.startswith("billing_webhook_queue_oldest_age_seconds "))
    assert 89 <= float(age.split()[1]) < 120
    ledger_drain()
    scrape = client.get("/metrics").content.decode()
    assert "billing_webhook_queue_depth 0.0" in scrape
    assert "billing_webhook_queue_oldest_age_seconds 0.0" in scrape


@pytest.mark.django_db
def test_claims_and_batch_sizes_are_counted(client: Client, effect_handler: Any) -> None:
    from prometheus_client import REGISTRY

    claimed = REGISTRY.get_sample_value("billing_webhook_drain_claimed_total") or 0.0
    batches = REGISTRY.get_sample_value("billing_webhook_drain_batch_size_count") or 0.0
    _stored(client, "evt_c1", "evt_c2", "evt_c3")
    ledger_drain()
    assert REGISTRY.get_sample_value("billing_webhook_drain_claimed_total") == claimed + 3
    assert REGISTRY.get_sample_value("billing_webhook_drain_batch_size_count") == batches + 1


def test_beat_runs_a_drain_every_thirty_seconds() -> None:
    assert scheduled_task_for("webhooks.drain_ledger_scheduled").every_seconds == 30


@pytest.mark.django_db
def test_the_scheduled_drain_processes_rows_whose_wake_up_was_lost(client: Client, effect_handler: Any) -> None:
    from apps.webhooks.tasks import drain_ledger_scheduled

    _stored(client, "evt_lost_wake")
    result = drain_ledger_scheduled.delay().get()
    assert result["summary"]["claimed"] == 1
    assert ProcessorEvent.objects.get().status == "processed"


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_claims_at_once_take_disjoint_rows_without_waiting(
    client: Client, effect_handler: Any, no_wakeup: None
) -> None:
    _stored(client, *(f"evt_k{i}" for i in range(10)))
    held = threading.Event()
    release = threading.Event()
    first: list[int] = []

    def claim_and_hold() -> None:
        try:
            with transaction.atomic():
                first.extend(row.pk for row in ledger_claim(limit=4, now=timezone.now()))
                held.set()
                release.wait(timeout=10)
        finally:
            connections.close_all()

    other = threading.Thread(target=claim_and_hold)
    other.start()
    try:
        assert held.wait(timeout=10)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '500ms'")  # SKIP LOCKED: it never waits
            second = [row.pk for row in ledger_claim(limit=10, now=timezone.now())]
    finally:
        release.set()
        other.join(timeout=10)
    assert len(first) == 4
    assert len(second) == 6
    assert not set(first) & set(second)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_no_more_drains_run_than_the_configured_slots(
    client: Client, effect_handler: Any, settings: Any, no_wakeup: None
) -> None:
    settings.WEBHOOK_DRAIN_CONCURRENCY = 1
    _stored(client, "evt_slot")
    holding = threading.Event()
    release = threading.Event()

    def hold_the_slot() -> None:
        try:
            with session_lock("webhooks:drain:0") as held:
                assert held
                holding.set()
                release.wait(timeout=10)
        finally:
            connections.close_all()

    other = threading.Thread(target=hold_the_slot)
    other.start()
    try:
        assert holding.wait(timeout=10)
        busy = ledger_drain()
    finally:
        release.set()
        other.join(timeout=10)
    assert busy.busy and busy.claimed == 0
    assert ProcessorEvent.objects.get().status == "received"
    assert ledger_drain().claimed == 1  # the slot is free again
    assert effects("evt_slot") == 1


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_same_second_tie_in_a_batch_is_refetched_outside_the_transaction(
    alice: Tenant,
    stripe_sandbox: SandboxProcess,
    stripe_client: Any,
    stripe_requests: StripeRequests,
    no_wakeup: None,
) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    sub_id, _ = sandbox_subscription(stripe_client, user_id="u-tie-b")
    created = int(time.time()) - 60
    client = Client()
    for event_id in ("evt_tie_b1", "evt_tie_b2"):
        snapshot = subscription_snapshot(sub_id, status="trialing", user_id="u-tie-b")
        event = make_event(event_id, "customer.subscription.updated", created=created, obj=snapshot)
        assert deliver(client, event).status_code == 200
    # Both rows in one batch: the second finds the first applied under its lock (a tie), so only
    # Stripe's current object can order them, and it is fetched after the batch's transaction.
    summary = ledger_drain()
    assert (summary.claimed, summary.done, summary.failed) == (2, 2, 0)
    stripe_requests.assert_none_inside_our_transactions()
    record = SubscriptionRecord.objects.get(stripe_subscription_id=sub_id)
    assert (record.last_event_id, record.status) == ("evt_tie_b2", "active")  # Stripe's, not the snapshot's
    assert set(ProcessorEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert ProcessorEvent.objects.get(stripe_event_id="evt_tie_b2").attempts == 1
