from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from apps.webhooks.models import ProcessorEvent
from apps.webhooks.sweeper import failed_backoff, ledger_sweep
from apps.webhooks.tasks import sweep_ledger
from billing_service.beat_schedule import BEAT_SCHEDULE
from tests.webhooks.conftest import deliver, effects, make_event

pytestmark = pytest.mark.django_db


def _stored(client: Client, event_id: str) -> ProcessorEvent:
    # Without committed(): the enqueue never runs, as if the broker lost the message.
    assert deliver(client, make_event(event_id)).status_code == 200
    return ProcessorEvent.objects.get(stripe_event_id=event_id)


def test_a_worker_killed_mid_way_leaves_a_row_the_sweeper_processes_exactly_once(
    client: Client, effect_handler: Any
) -> None:
    row = _stored(client, "evt_killed")
    # The worker claimed the row and died before its transaction committed: no effect, old claim.
    ProcessorEvent.objects.filter(pk=row.pk).update(
        status="processing", attempts=1, claimed_at=timezone.now() - timedelta(minutes=6)
    )
    assert ledger_sweep()["processing"] == 1
    row.refresh_from_db()
    assert row.status == "processed"
    assert row.attempts == 2
    assert effects("evt_killed") == 1
    # A second sweep finds nothing to do.
    assert ledger_sweep() == {"received": 0, "processing": 0, "failed": 0}
    assert effects("evt_killed") == 1


def test_a_fresh_processing_claim_is_left_to_its_worker(client: Client, effect_handler: Any) -> None:
    row = _stored(client, "evt_busy")
    ProcessorEvent.objects.filter(pk=row.pk).update(
        status="processing", attempts=1, claimed_at=timezone.now() - timedelta(seconds=30)
    )
    assert ledger_sweep()["processing"] == 0
    assert effects() == 0


def test_a_row_the_broker_lost_is_swept_once_it_is_two_minutes_old(client: Client, effect_handler: Any) -> None:
    row = _stored(client, "evt_lost")
    assert ledger_sweep()["received"] == 0  # too fresh: its message may still be on its way
    ProcessorEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(minutes=3))
    assert sweep_ledger.delay().get()["summary"] == {"received": 1, "processing": 0, "failed": 0}
    row.refresh_from_db()
    assert row.status == "processed"
    assert effects("evt_lost") == 1


def test_a_failed_row_is_retried_after_its_backoff_until_the_attempts_run_out(
    client: Client, effect_handler: Any, settings: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    row = _stored(client, "evt_failed")
    recently = timezone.now() - failed_backoff(3) + timedelta(seconds=30)
    ProcessorEvent.objects.filter(pk=row.pk).update(status="failed", attempts=3, claimed_at=recently)
    assert ledger_sweep()["failed"] == 0
    ProcessorEvent.objects.filter(pk=row.pk).update(attempts=5, claimed_at=timezone.now() - timedelta(days=1))
    assert ledger_sweep()["failed"] == 0  # gave up: left for an operator's replay
    ProcessorEvent.objects.filter(pk=row.pk).update(attempts=3)
    assert ledger_sweep()["failed"] == 1
    row.refresh_from_db()
    assert row.status == "processed"


def test_the_backoff_of_failed_rows_doubles_and_is_capped() -> None:
    assert failed_backoff(2) == 2 * failed_backoff(1)
    assert failed_backoff(30) == timedelta(hours=6)


def test_the_sweeper_runs_every_minute_from_beat() -> None:
    entry = next(e for e in BEAT_SCHEDULE if e.task == "webhooks.sweep_ledger")
    assert entry.every_seconds == 60


def test_requeues_are_counted(client: Client, effect_handler: Any) -> None:
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("billing_webhook_sweeper_requeued_total", {"status": "received"}) or 0.0
    row = _stored(client, "evt_count")
    ProcessorEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(minutes=3))
    ledger_sweep()
    assert REGISTRY.get_sample_value("billing_webhook_sweeper_requeued_total", {"status": "received"}) == before + 1


def test_the_sweep_can_be_run_by_hand_and_prints_a_summary(client: Client, effect_handler: Any) -> None:
    row = _stored(client, "evt_by_hand")
    ProcessorEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(minutes=3))
    out = StringIO()
    call_command("sweep_ledger", stdout=out)
    text = out.getvalue()
    assert "received: 1 re-enqueued" in text
    assert "ledger sweep: 1 events re-enqueued" in text
    row.refresh_from_db()
    assert row.status == "processed"
    assert effects("evt_by_hand") == 1
