"""R4: a worker SIGKILLed in the middle of its work on a backlog, a second worker started: every event
processed exactly once, counted by its effects (revenue entries, the subscription's state), not by
statuses alone.

The backlog is in the ledger before any worker runs: payments and refunds (one revenue entry each, no
Stripe call) around two events of one subscription in the same second. The second of those needs
Stripe's current object (a tie), and the sandbox answers that fetch after 20 s: the worker is killed
while it waits, with events processed before it and events waiting after it, so the kill lands inside
a batch whatever the batch size. Nothing of the killed work may be committed, and nothing committed
may be done again.

Written against what can be observed (ledger rows, revenue entries, the subscription record), so it
holds for a per-event task as for a worker that claims batches from the ledger: workers are started
through processes.py (worker_argv()). The killed worker's claim is taken over once it is older than
the workers' stuck threshold (30 s here, the least the settings allow; 6 min in production), when the
sweeper, the safety net beat runs every minute, re-enqueues it: the test runs it every 2 s.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery import Celery

from apps.entitlements.models import SubscriptionRecord
from apps.webhooks import sweeper
from apps.webhooks.models import ProcessorEvent
from tests.conftest import Tenant
from tests.faults.conftest import (
    Service,
    deliver_all,
    ledger_drained,
    ledger_statuses,
    payment_effects,
    payment_events,
    stripe_event,
    wake_drain,
)
from tests.faults.processes import wait_until
from tests.faults.report import full_form, record_figure

pytestmark = [pytest.mark.faults, pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

TEST = "R4 worker killed"
BACKLOG = 2000 if full_form() else 150  # payment and refund events, besides the subscription's two
SLOW_FETCH_MS = 20_000  # ends before the claim is taken over, so the sandbox stops at once
TAKEOVER_AFTER = 30


def _sweep_into_worker(broker_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """One sweep, its re-enqueues sent to the test's workers (the test process runs tasks eagerly)."""
    if hasattr(sweeper, "process_event"):
        sender = Celery(broker=broker_url, set_as_current=False)

        class _ToWorkers:
            @staticmethod
            def delay(ledger_id: int) -> None:
                sender.send_task("webhooks.process_event", args=[ledger_id])

        monkeypatch.setattr(sweeper, "process_event", _ToWorkers)
    return sweeper.ledger_sweep()


def test_a_worker_killed_mid_batch_leaves_every_event_processed_exactly_once(
    service: Service, alice: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = service.sandbox
    slug = alice.project.slug
    bulk = sandbox.bulk_subscriptions(1, metadata={"project": slug}, user_prefix="r4-sub-")
    sub_id = bulk["subscriptions"][0]
    snapshot = _subscription(service, sub_id)
    prefix = f"r4{int(time.time())}"
    base = int(time.time()) - 3 * BACKLOG
    before = payment_events(slug, int(BACKLOG * 0.6), prefix=prefix, created=base)
    tie_at = base + BACKLOG
    pair = [
        stripe_event(f"evt_{prefix}_sub_a", "customer.subscription.updated", snapshot, created=tie_at),
        stripe_event(f"evt_{prefix}_sub_b", "customer.subscription.updated", snapshot, created=tie_at),
    ]
    after = payment_events(slug, BACKLOG - len(before), prefix=f"{prefix}x", created=tie_at + 1)
    backlog = before + pair + after

    web = service.web()
    answers = deliver_all(web.base_url, backlog, concurrency=1)  # in order: the queue's order too
    assert all(a.status == 200 for a in answers)
    assert ledger_statuses() == {"received": len(backlog)}

    sandbox.set_fault(f"/v1/subscriptions/{sub_id}", method="GET", delay_ms=SLOW_FETCH_MS, count=1)
    sandbox.reset_request_stats()
    first = service.worker(name="worker-1")
    wait_until(
        lambda: sandbox.request_stats()["total"] > 0, timeout=60, interval=0.05, what="the tie's fetch from Stripe"
    )
    time.sleep(0.5)  # inside the fetch, the rest of the backlog waiting
    first.kill()
    statuses = ledger_statuses()
    processed_before_kill = statuses.get("processed", 0)
    record_figure(TEST, "backlog", len(backlog))
    record_figure(TEST, "processed when killed", processed_before_kill)
    record_figure(TEST, "left processing by the kill", statuses.get("processing", 0))
    assert 0 < processed_before_kill < len(backlog)
    # Nothing of the event being processed is committed (the first of the pair may or may not be,
    # depending on whether it shares the interrupted batch).
    assert not SubscriptionRecord.objects.filter(stripe_subscription_id=sub_id, last_event_id=pair[1]["id"]).exists()

    sandbox.clear_faults()
    settings.WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS = 1
    settings.WEBHOOK_SWEEP_RECEIVED_AFTER_SECONDS = 1
    settings.WEBHOOK_SWEEP_FAILED_AFTER_SECONDS = 1
    started = time.monotonic()
    # The workers' own threshold for taking over a claim: the least the settings allow (30 s, above
    # a task time limit of 20 s), where production has 6 minutes. The recovery time is mostly this.
    service.worker(
        name="worker-2",
        WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS=str(TAKEOVER_AFTER),
        CELERY_TASK_TIME_LIMIT="20",
        CELERY_TASK_SOFT_TIME_LIMIT="15",
    )
    sweeps = 0

    def drained_with_sweeps() -> bool:
        nonlocal sweeps
        if ledger_drained(len(backlog)):
            return True
        sweeps += 1
        _sweep_into_worker(service.broker_url(), monkeypatch)  # as beat would, every minute
        wake_drain(service.broker_url())  # beat's periodic drain, where there is one
        return False

    wait_until(
        drained_with_sweeps, timeout=TAKEOVER_AFTER + (300 if full_form() else 30), interval=2.0, what="backlog drained"
    )
    record_figure(TEST, "recovered in (second worker started to drained)", round(time.monotonic() - started, 1), "s")
    record_figure(TEST, "sweeps run", sweeps)

    # Effects counted: one revenue entry per payment and per refund event, the subscription's state
    # from Stripe's current object applied once, by the event the kill interrupted.
    payments = (len(before) + 1) // 2 + (len(after) + 1) // 2  # payment_events starts with a payment
    refunds = len(before) + len(after) - payments
    found = [a + b for a, b in zip(payment_effects(prefix), payment_effects(f"{prefix}x"), strict=True)]
    record_figure(TEST, "revenue entries (found / expected)", f"{sum(found)} / {payments + refunds}")
    assert found == [payments, refunds]
    record = SubscriptionRecord.objects.get(stripe_subscription_id=sub_id)
    assert record.last_event_id == pair[1]["id"]
    rows = ProcessorEvent.objects.filter(stripe_event_id__startswith=f"evt_{prefix}")
    assert set(rows.values_list("status", flat=True)) == {"processed"}
    interrupted = rows.get(stripe_event_id=pair[1]["id"])
    record_figure(TEST, "attempts of the interrupted event", interrupted.attempts)
    assert interrupted.attempts >= 2  # claimed by the killed worker, then done once by another
    record_figure(TEST, "events processed twice (effects)", 0)


def _subscription(service: Service, sub_id: str) -> dict[str, Any]:
    import requests

    response = requests.get(
        f"{service.sandbox.base_url}/v1/subscriptions/{sub_id}",
        headers={"Authorization": f"Bearer {service.sandbox.api_key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text[:300]
    return dict(response.json())
