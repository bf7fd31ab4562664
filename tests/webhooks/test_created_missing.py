"""A hand-made event without `created` is stamped with the time of receipt, not refused (API.md)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from apps.webhooks import registry
from apps.webhooks.models import CREATED_STAMPED_NOTE, ProcessorEvent
from apps.webhooks.processing import event_process
from apps.webhooks.registry import Outcome, StripeEvent
from tests.webhooks.conftest import deliver, make_event

pytestmark = pytest.mark.django_db


def _without_created(event_id: str, **changes: Any) -> dict[str, Any]:
    event = {k: v for k, v in make_event(event_id).items() if k != "created"}
    return {**event, **changes}


@pytest.mark.parametrize("event", [_without_created("evt_nc"), _without_created("evt_nc", created=None)])
def test_an_event_without_created_is_stored_with_the_time_of_receipt_and_says_so(
    client: Client, handlers: dict[str, Any], event: dict[str, Any]
) -> None:
    seen: list[int] = []

    @registry.handles("test.thing")
    def record(stripe_event: StripeEvent) -> Outcome:
        seen.append(stripe_event.created)
        return Outcome("processed", note="applied")

    before = int(time.time())
    response = deliver(client, event)
    after = int(time.time())
    assert response.status_code == 200, response.content
    row = ProcessorEvent.objects.get()
    assert before <= row.created.timestamp() <= after
    assert row.created.microsecond == 0  # whole seconds, like Stripe's
    assert row.created_stamped is True
    assert row.note == CREATED_STAMPED_NOTE
    assert row.payload == event  # the payload stays as received

    event_process(ledger_id=row.pk)
    row.refresh_from_db()
    assert seen == [int(row.created.timestamp())]  # processing uses the stamped time
    assert row.status == "processed"
    assert row.note == f"{CREATED_STAMPED_NOTE}; applied"
    assert row.created_stamped is True


def test_an_event_with_created_is_not_stamped(client: Client) -> None:
    assert deliver(client, make_event("evt_c")).status_code == 200
    row = ProcessorEvent.objects.get()
    assert (row.created_stamped, row.note, int(row.created.timestamp())) == (False, "", 1_700_000_000)


def test_a_created_that_is_present_but_invalid_is_still_a_400(client: Client) -> None:
    body = json.dumps(_without_created("evt_bad_c", created=-5)).encode()
    response = deliver(client, body)
    assert response.status_code == 400
    assert "`created`" in response.json()["detail"]
