from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.test import Client

from apps.webhooks.models import ProcessorEvent
from tests.conftest import committed
from tests.webhooks.conftest import deliver, effects, make_event


@pytest.mark.django_db
def test_a_valid_event_is_stored_as_received_then_processed_after_commit(client: Client, effect_handler: Any) -> None:
    event = make_event("evt_store_1", obj={"id": "obj_9", "project_id": None})
    with committed():
        response = deliver(client, event)
        # Stored, not yet processed: processing is enqueued only when the row commits.
        assert ProcessorEvent.objects.get().status == "received"
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    row = ProcessorEvent.objects.get()
    assert row.stripe_event_id == "evt_store_1"
    assert row.type == "test.thing"
    assert row.api_version == settings.STRIPE_API_VERSION
    assert row.created == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert row.payload == event
    assert row.headers["Stripe-Signature"].startswith("t=")
    assert row.headers["Content-Type"] == "application/json"
    assert row.headers["request_id"]
    assert row.status == "processed"
    assert row.changes == ["effect for evt_store_1"]
    assert effects("evt_store_1") == 1


@pytest.mark.django_db
def test_the_raw_body_is_stored_exactly_as_received(client: Client) -> None:
    body = b'{"id":"evt_raw","type":"x.y",   "created":1700000000,"data":{"object":{"n":"\\u00e9"}}}'
    assert deliver(client, body).status_code == 200
    assert ProcessorEvent.objects.get().raw_body == body.decode()


@pytest.mark.django_db
def test_the_same_event_delivered_twice_is_stored_once_and_both_get_200(client: Client, effect_handler: Any) -> None:
    with committed():
        first = deliver(client, make_event("evt_dup"))
        second = deliver(client, make_event("evt_dup"))
    assert first.json() == {"received": True, "duplicate": False}
    assert second.status_code == 200
    assert second.json() == {"received": True, "duplicate": True}
    assert ProcessorEvent.objects.count() == 1
    assert effects("evt_dup") == 1


@pytest.mark.django_db
def test_an_accepted_delivery_costs_at_most_three_queries(client: Client, django_assert_max_num_queries: Any) -> None:
    deliver(client, make_event("evt_warmup"))
    # The insert, and the savepoint around it (a duplicate must not break the transaction).
    with django_assert_max_num_queries(3):
        assert deliver(client, make_event("evt_fast")).status_code == 200


@pytest.mark.django_db
def test_a_database_failure_is_a_503_so_that_stripe_retries(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(**kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(ProcessorEvent.objects, "create", down)
    response = deliver(client, make_event())
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]


@pytest.mark.django_db
def test_a_broker_failure_does_not_lose_the_ack(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.webhooks import tasks

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    # The only publish a delivery causes: the wake-up of a drain (apps/webhooks/wakeup.py).
    monkeypatch.setattr(tasks.drain_ledger, "apply_async", broker_down)
    with committed():
        response = deliver(client, make_event("evt_nobroker"))
    # The row is durable; beat's periodic drain (or the sweeper) will process it.
    assert response.status_code == 200
    assert ProcessorEvent.objects.get().status == "received"


@pytest.mark.django_db
def test_receipts_are_counted_in_the_metrics(client: Client) -> None:
    from prometheus_client import REGISTRY

    def value(outcome: str, reason: str = "") -> float:
        labels = {"outcome": outcome, "reason": reason}
        return REGISTRY.get_sample_value("billing_webhooks_received_total", labels) or 0.0

    before = (value("accepted"), value("duplicate"), value("rejected", "bad_signature"))
    deliver(client, make_event("evt_m"))
    deliver(client, make_event("evt_m"))
    deliver(client, make_event("evt_m2"), secret="whsec_wrong")
    assert (value("accepted"), value("duplicate"), value("rejected", "bad_signature")) == (
        before[0] + 1,
        before[1] + 1,
        before[2] + 1,
    )
    scrape = client.get("/metrics").content.decode()
    assert 'billing_webhook_ledger_events{status="received"} 1.0' in scrape


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_deliveries_of_one_event_store_one_row_and_apply_it_once(effect_handler: Any) -> None:
    barrier = threading.Barrier(10)
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def post() -> None:
        try:
            barrier.wait(timeout=10)
            response = deliver(Client(), make_event("evt_race"))
            assert response.status_code == 200
            answers.append(response.json())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(answers) == 10
    assert sum(not answer["duplicate"] for answer in answers) == 1
    assert ProcessorEvent.objects.filter(stripe_event_id="evt_race").count() == 1
    assert ProcessorEvent.objects.get().status == "processed"
    assert effects("evt_race") == 1
