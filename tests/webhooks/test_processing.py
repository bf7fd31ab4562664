from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.common.models import AuditLog
from apps.webhooks import registry
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.processing import event_process
from apps.webhooks.registry import Outcome, StripeEvent
from apps.webhooks.tasks import process_event
from tests.conftest import Tenant
from tests.webhooks.conftest import EFFECT, deliver, effects, make_event

pytestmark = pytest.mark.django_db


def _stored(client: Client, event_id: str = "evt_p1", event_type: str = "test.thing", **obj: Any) -> ProcessorEvent:
    assert deliver(client, make_event(event_id, event_type, obj={"id": "obj_1", **obj})).status_code == 200
    return ProcessorEvent.objects.get(stripe_event_id=event_id)


def test_a_handler_that_writes_then_raises_leaves_no_effect_and_a_failed_row(
    client: Client, handlers: dict[str, Any]
) -> None:
    @registry.handles("test.thing")
    def half_done(event: StripeEvent) -> Outcome:
        AuditLog.objects.create(actor="test", action=EFFECT, target=event.id)
        raise RuntimeError("boom after the write")

    row = _stored(client)
    with pytest.raises(RuntimeError):
        event_process(ledger_id=row.pk)
    row.refresh_from_db()
    assert effects() == 0
    assert row.status == "failed"
    assert row.attempts == 1
    assert "RuntimeError: boom after the write" in row.last_error
    assert row.processed_at is None


def test_a_failed_event_is_retried_by_the_task_and_then_processed(client: Client, handlers: dict[str, Any]) -> None:
    calls: list[str] = []

    @registry.handles("test.thing")
    def flaky(event: StripeEvent) -> Outcome:
        calls.append(event.id)
        if len(calls) == 1:
            raise ConnectionError("a transient failure")
        AuditLog.objects.create(actor="test", action=EFFECT, target=event.id)
        return Outcome("processed", changes=["done"])

    row = _stored(client)
    # apply() without propagation runs Celery's retry inline, as a worker would after the backoff.
    result = process_event.apply(args=(row.pk,), throw=False)
    assert result.get() == "processed"
    row.refresh_from_db()
    assert calls == ["evt_p1", "evt_p1"]
    assert row.status == "processed"
    assert row.attempts == 2
    assert row.last_error == ""
    assert effects("evt_p1") == 1


def test_the_task_acks_late_and_retries_with_backoff_and_jitter() -> None:
    assert process_event.acks_late is True
    assert process_event.reject_on_worker_lost is True
    task: Any = process_event  # autoretry options are set on the task class by @shared_task
    assert task.autoretry_for == (Exception,)
    assert task.max_retries == 10
    assert task.retry_backoff
    assert task.retry_backoff_max == 600
    assert task.retry_jitter is True


def test_an_event_without_a_handler_is_ignored_with_a_note(client: Client, handlers: dict[str, Any]) -> None:
    row = _stored(client, event_type="radar.early_fraud_warning.created")
    outcome = event_process(ledger_id=row.pk)
    row.refresh_from_db()
    assert outcome is not None and outcome.status == "ignored"
    assert row.status == "ignored"
    assert row.note == "no handler for radar.early_fraud_warning.created"
    assert row.processed_at is not None


def test_a_handler_outcome_sets_status_project_note_and_changes(
    client: Client, handlers: dict[str, Any], alice: Tenant
) -> None:
    @registry.handles("test.thing")
    def route(event: StripeEvent) -> Outcome:
        assert event.data_object["id"] == "obj_1" and event.created == 1_700_000_000
        return Outcome("ignored", project_id=alice.project.pk, note="stale: newer state already applied")

    row = _stored(client)
    event_process(ledger_id=row.pk)
    row.refresh_from_db()
    assert (row.status, row.project_id, row.note, row.changes) == (
        "ignored",
        alice.project.pk,
        "stale: newer state already applied",
        [],
    )


def test_a_processed_event_is_not_processed_again(client: Client, effect_handler: Any) -> None:
    row = _stored(client)
    assert event_process(ledger_id=row.pk) is not None
    assert event_process(ledger_id=row.pk) is None
    row.refresh_from_db()
    assert row.attempts == 1


def test_a_row_a_live_worker_holds_is_not_claimed_twice(client: Client, effect_handler: Any) -> None:
    row = _stored(client)
    ProcessorEvent.objects.filter(pk=row.pk).update(status="processing", claimed_at=timezone.now(), attempts=1)
    assert event_process(ledger_id=row.pk) is None
    assert effects() == 0


def test_a_worker_whose_claim_was_taken_over_commits_nothing(client: Client, handlers: dict[str, Any]) -> None:
    @registry.handles("test.thing")
    def overtaken(event: StripeEvent) -> Outcome:
        AuditLog.objects.create(actor="test", action=EFFECT, target=event.id)
        # Meanwhile the sweeper judged this worker dead and another claimed the row.
        ProcessorEvent.objects.filter(pk=event.ledger_id).update(claimed_at=timezone.now() + timedelta(seconds=1))
        return Outcome("processed")

    row = _stored(client)
    assert event_process(ledger_id=row.pk) is None
    assert effects() == 0


def test_processing_is_counted_in_the_metrics(client: Client, effect_handler: Any) -> None:
    from prometheus_client import REGISTRY

    labels = {"type": "test.thing", "status": "processed"}
    before = REGISTRY.get_sample_value("billing_webhook_events_processed_total", labels) or 0.0
    event_process(ledger_id=_stored(client).pk)
    assert REGISTRY.get_sample_value("billing_webhook_events_processed_total", labels) == before + 1
