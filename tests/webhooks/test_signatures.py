from __future__ import annotations

import json
import time
from typing import Any

import pytest
import time_machine
from django.test import Client

from apps.webhooks.models import ProcessorEvent
from apps.webhooks.signature import SignatureError, sign, verify
from tests.conftest import committed
from tests.webhooks.conftest import OTHER_SECRET, SECRET, deliver, effects, make_event

pytestmark = pytest.mark.django_db


def _accepted(response: Any) -> bool:
    return response.status_code == 200 and response.json()["received"] is True


# The clock is frozen on a whole second: a real one can cross a second boundary between signing
# and verifying, which would make "299 s old" 300.0005 s old.
FROZEN = 1_795_000_000


@time_machine.travel(FROZEN, tick=False)
def test_a_timestamp_299_seconds_old_is_accepted(client: Client) -> None:
    assert _accepted(deliver(client, make_event(), timestamp=FROZEN - 299))


@time_machine.travel(FROZEN, tick=False)
def test_a_timestamp_299_seconds_ahead_is_accepted(client: Client) -> None:
    assert _accepted(deliver(client, make_event(), timestamp=FROZEN + 299))


@time_machine.travel(FROZEN, tick=False)
@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_301_seconds_off_either_way_is_rejected(client: Client, offset: int) -> None:
    response = deliver(client, make_event(), timestamp=FROZEN + offset)
    assert response.status_code == 400
    assert "tolerance" in response.json()["detail"]
    assert not ProcessorEvent.objects.exists()


def test_the_tolerance_is_a_setting(client: Client, settings: Any) -> None:
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 10
    assert deliver(client, make_event(), timestamp=int(time.time()) - 60).status_code == 400


def test_an_event_signed_with_the_second_of_two_secrets_is_accepted(client: Client, settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET, OTHER_SECRET]
    assert _accepted(deliver(client, make_event(), secret=OTHER_SECRET))


def test_a_header_with_several_v1_values_is_accepted_when_one_matches(client: Client) -> None:
    body = json.dumps(make_event()).encode()
    now = int(time.time())
    good = sign(body, secret=SECRET, timestamp=now).split("v1=")[1]
    header = f"t={now},v1={'0' * 64},v1={good},v0={'1' * 64}"
    assert _accepted(deliver(client, body, header=header))


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("", "Missing Stripe-Signature"),
        ("garbage", "no timestamp"),
        ("t=abc,v1=00", "bad timestamp"),
        ("t=NOW", "no v1 signature"),
        ("t=NOW,v0=" + "0" * 64, "no v1 signature"),
        ("t=NOW,v1=" + "0" * 64, "No signature matches"),
        ("t=NOW,v1=ünïcode", "No signature matches"),
    ],
)
def test_a_bad_or_missing_signature_is_a_400_and_nothing_is_stored_or_processed(
    client: Client, effect_handler: Any, header: str, says: str
) -> None:
    header = header.replace("NOW", str(int(time.time())))
    with committed():
        response = deliver(client, make_event(), header=header) if header else _unsigned(client)
    assert response.status_code == 400
    assert says in response.json()["detail"]
    assert not ProcessorEvent.objects.exists()
    assert effects() == 0


def _unsigned(client: Client) -> Any:
    return client.post("/api/v1/webhooks/stripe", data=make_event(), content_type="application/json")


def test_a_body_signed_with_an_unknown_secret_is_rejected(client: Client) -> None:
    response = deliver(client, make_event(), secret="whsec_someone_else")
    assert response.status_code == 400


def test_a_body_changed_after_signing_is_rejected(client: Client) -> None:
    body = json.dumps(make_event()).encode()
    header = sign(body, secret=SECRET, timestamp=int(time.time()))
    assert deliver(client, body.replace(b"evt_test_1", b"evt_test_2"), header=header).status_code == 400


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a Stripe event"),
        (json.dumps({**make_event(), "id": "cus_123"}).encode(), "`id`"),
        (json.dumps({k: v for k, v in make_event().items() if k != "type"}).encode(), "`type`"),
        (json.dumps({**make_event(), "created": "yesterday"}).encode(), "`created`"),
        (json.dumps({**make_event(), "data": {}}).encode(), "`data.object`"),
    ],
)
def test_a_signed_body_that_is_not_an_event_is_a_400(client: Client, body: bytes, says: str) -> None:
    response = deliver(client, body)
    assert response.status_code == 400
    assert says in response.json()["detail"]
    assert not ProcessorEvent.objects.exists()


def test_a_get_is_not_allowed(client: Client) -> None:
    assert client.get("/api/v1/webhooks/stripe").status_code == 405


def test_verify_accepts_any_secret_and_returns_the_timestamp() -> None:
    body = b'{"id": "evt_1"}'
    header = sign(body, secret="b", timestamp=1000)
    assert verify(header, body, secrets=["a", "b"], tolerance=300, now=1100) == 1000
    with pytest.raises(SignatureError) as error:
        verify(header, body, secrets=[], tolerance=300, now=1100)
    assert error.value.reason == "no_secret"
