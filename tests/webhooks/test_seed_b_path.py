"""Seed B's webhook path is an alias of ours: the same view, the same ledger."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client
from django.urls import resolve

from apps.webhooks.models import ProcessorEvent
from apps.webhooks.signature import sign
from tests.webhooks.conftest import SECRET, URL, make_event

SEED_B_URL = "/api/v1/billing/webhooks/stripe"


def test_seed_b_path_is_served_by_the_same_view() -> None:
    assert resolve(SEED_B_URL).func is resolve(URL).func


@pytest.mark.django_db
def test_a_signed_event_posted_to_seed_b_path_is_stored(client: Client) -> None:
    body = json.dumps(make_event("evt_seed_b")).encode()
    response = client.post(
        SEED_B_URL,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign(body, secret=SECRET, timestamp=int(time.time()))},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "duplicate": False}
    assert ProcessorEvent.objects.get().stripe_event_id == "evt_seed_b"


@pytest.mark.django_db
def test_seed_b_path_refuses_an_unsigned_event_like_ours(client: Client) -> None:
    response = client.post(SEED_B_URL, data=json.dumps(make_event()), content_type="application/json")
    assert response.status_code == 400
    assert not ProcessorEvent.objects.exists()
