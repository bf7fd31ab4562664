"""An event rendered in another API version than the pinned one is stored, then refused at
processing with a clear error and a metric, instead of being processed on a guess about its shape.

A replay (force: an operator's act, after fixing the endpoint's version in Stripe) processes it, as
does any retry once the pinned version matches. Events without a version are processed as before.
"""

from __future__ import annotations

from typing import Any

from django.test import Client
from prometheus_client import REGISTRY

from apps.webhooks import metrics
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.processing import event_process
from apps.webhooks.replays import replay_run
from tests.conftest import committed
from tests.webhooks.conftest import deliver, effects, make_event

OLD = "2020-08-27"
ERROR = (
    f"event api_version {OLD} is not the pinned 2026-08-26.dahlia; fix the endpoint's version in Stripe, then replay"
)


def old_event(event_id: str = "evt_old") -> dict[str, Any]:
    return {**make_event(event_id), "api_version": OLD}


def mismatches_counted(api_version: str = OLD) -> float:
    return REGISTRY.get_sample_value("billing_webhook_api_version_mismatch_total", {"api_version": api_version}) or 0.0


def waiting_for_an_operator() -> dict[str, float]:
    (family,) = [f for f in metrics.ledger_collector.collect() if f.name == "billing_webhook_ledger_wrong_api_version"]
    return {sample.labels["api_version"]: sample.value for sample in family.samples}


def test_an_event_of_another_api_version_is_stored_and_failed_with_a_clear_error(
    client: Client, effect_handler: Any, settings: Any, db: None
) -> None:
    settings.STRIPE_API_VERSION = "2026-08-26.dahlia"
    before = mismatches_counted()
    with committed():  # processing runs (eagerly) once the row is committed
        response = deliver(client, old_event())
    assert response.status_code == 200 and response.json()["duplicate"] is False

    row = ProcessorEvent.objects.get(stripe_event_id="evt_old")
    assert (row.status, row.api_version, row.attempts) == ("failed", OLD, 1)
    assert row.last_error == ERROR
    assert effects() == 0  # the handler never saw it
    assert mismatches_counted() == before + 1
    assert waiting_for_an_operator() == {OLD: 1}

    # A retry (the task's, the sweeper's) cannot fix it: the same error, never the handler.
    assert event_process(ledger_id=row.pk) is None
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("failed", 2, ERROR)
    assert effects() == 0


def test_a_replay_processes_it_once_the_endpoint_is_fixed(
    client: Client, effect_handler: Any, settings: Any, db: None
) -> None:
    settings.STRIPE_API_VERSION = "2026-08-26.dahlia"
    with committed():
        deliver(client, old_event())
    assert ProcessorEvent.objects.get().status == "failed"

    run = replay_run(project_id=None, event_ids=["evt_old"], requested_by="ops", reason="endpoint version fixed")

    assert run.counts["processed"] == 1, run.results
    row = ProcessorEvent.objects.get()
    assert (row.status, row.last_error) == ("processed", "")
    assert f"api_version {OLD} (pinned 2026-08-26.dahlia): processed by a replay" in row.note
    assert effects("evt_old") == 1
    assert waiting_for_an_operator() == {}


def test_it_is_processed_by_a_plain_retry_once_the_pinned_version_matches(
    client: Client, effect_handler: Any, settings: Any, db: None
) -> None:
    settings.STRIPE_API_VERSION = "2026-08-26.dahlia"
    with committed():
        deliver(client, old_event())
    row = ProcessorEvent.objects.get()
    assert row.status == "failed"

    settings.STRIPE_API_VERSION = OLD  # a deploy pins the version the endpoint sends
    event_process(ledger_id=row.pk)
    row.refresh_from_db()
    assert (row.status, row.note) == ("processed", "")
    assert effects("evt_old") == 1


def test_an_event_without_a_version_is_processed_as_before(client: Client, effect_handler: Any, db: None) -> None:
    event = make_event("evt_handmade")
    del event["api_version"]
    with committed():
        assert deliver(client, event).status_code == 200
    row = ProcessorEvent.objects.get()
    assert (row.status, row.api_version) == ("processed", "")
    assert effects("evt_handmade") == 1
