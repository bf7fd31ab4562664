"""What Stripe must not retry gets a 400 with the reason, and no error-level log.

A 5xx makes Stripe retry for three days, so it is kept for what retrying can fix: a database that
could not store a storable event. An event PostgreSQL can never store (a NUL character, a lone
surrogate, NaN) or a body nested too deep is refused with a 400, signed or not.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.db import DataError, OperationalError
from django.test import Client

from apps.webhooks.models import ProcessorEvent
from tests.webhooks.conftest import deliver, make_event

pytestmark = pytest.mark.django_db


def _nested(depth: int) -> bytes:
    """An event whose nesting (the event object itself counted) is `depth` levels."""
    # event {1} -> data {2} -> object {3} -> "deep": [4 ... depth]
    inner = "[" * (depth - 3) + "]" * (depth - 3)
    return (
        '{"id": "evt_deep", "type": "test.thing", "created": 1700000000, '
        '"data": {"object": {"id": "obj_1", "deep": ' + inner + "}}}"
    ).encode()


def _with(**changes: Any) -> bytes:
    return json.dumps({**make_event("evt_bad"), **changes}).encode()


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("1000 levels", _nested(1000), "nested deeper than 100 levels"),
    ("101 levels", _nested(101), "nested deeper than 100 levels"),
    ("NUL in the id", _with(id="evt_\u0000nul"), "NUL"),
    ("NUL in a value", _with(data={"object": {"id": "obj", "description": "a\u0000b"}}), "NUL"),
    ("NUL in a key", _with(data={"object": {"id": "obj", "metadata": {"k\u0000": "v"}}}), "NUL"),
    ("NUL in the type", _with(type="test.\u0000"), "NUL"),
    ("a lone surrogate", _with(data={"object": {"id": "obj", "name": "\ud800"}}), "surrogate"),
    ("NaN", b'{"id": "evt_nan", "type": "t", "created": 1700000000, "data": {"object": {"x": NaN}}}', "NaN"),
    ("Infinity", b'{"id": "evt_inf", "type": "t", "created": 1700000000, "data": {"object": {"x": Infinity}}}', "Inf"),
    ("-Infinity", b'{"id": "evt_ni", "type": "t", "created": 1700000000, "data": {"object": {"x": -Infinity}}}', "Inf"),
    ("not JSON", b"{nope", "not JSON"),
]


def _no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]
    # The capture works: the rejection itself is logged, as a warning.
    assert any("webhook_rejected" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(("body", "says"), [(b, s) for _, b, s in BAD_BODIES], ids=[n for n, _, _ in BAD_BODIES])
def test_a_signed_body_that_can_never_be_stored_is_a_400_with_the_reason(
    client: Client, caplog: pytest.LogCaptureFixture, body: bytes, says: str
) -> None:
    caplog.set_level(logging.DEBUG)
    response = deliver(client, body)
    assert response.status_code == 400, response.content
    assert says in response.json()["detail"]
    assert not ProcessorEvent.objects.exists()
    _no_error_logged(caplog)


@pytest.mark.parametrize("body", [_nested(1000), _with(id="evt_\u0000nul")], ids=["1000 levels", "NUL"])
def test_an_unsigned_bad_body_is_a_400_too(client: Client, caplog: pytest.LogCaptureFixture, body: bytes) -> None:
    caplog.set_level(logging.DEBUG)
    assert deliver(client, body, header="").status_code == 400
    assert deliver(client, body, header="t=1,v1=abc").status_code == 400
    assert not ProcessorEvent.objects.exists()
    _no_error_logged(caplog)


@pytest.mark.parametrize(
    "header", ["", "garbage", "t=1,v1=abc", "t=99999999999999,v1=abc"], ids=["missing", "malformed", "old", "bad t"]
)
def test_a_bad_signature_is_a_400_without_an_error_log(
    client: Client, caplog: pytest.LogCaptureFixture, header: str
) -> None:
    caplog.set_level(logging.DEBUG)
    assert deliver(client, make_event(), header=header).status_code == 400
    _no_error_logged(caplog)


def test_an_event_nested_exactly_100_levels_is_stored(client: Client) -> None:
    response = deliver(client, _nested(100))
    assert response.status_code == 200, response.content
    assert ProcessorEvent.objects.get().stripe_event_id == "evt_deep"


def test_a_value_the_database_refuses_is_a_400_not_a_retried_503(
    client: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the screening misses and PostgreSQL refuses (DataError) cannot succeed on a retry."""

    def refuses(**kwargs: Any) -> None:
        raise DataError("invalid input syntax for type json\nDETAIL: something specific")

    monkeypatch.setattr(ProcessorEvent.objects, "create", refuses)
    caplog.set_level(logging.DEBUG)
    response = deliver(client, make_event())
    assert response.status_code == 400
    assert response.json()["detail"] == "The event cannot be stored: invalid input syntax for type json"
    _no_error_logged(caplog)


def test_a_database_outage_is_still_a_503_and_logged_as_an_error(
    client: Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(**kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(ProcessorEvent.objects, "create", down)
    caplog.set_level(logging.DEBUG)
    assert deliver(client, make_event()).status_code == 503
    assert any(r.levelno >= logging.ERROR for r in caplog.records)


def test_rejections_are_counted_by_reason(client: Client) -> None:
    from prometheus_client import REGISTRY

    def value(reason: str) -> float:
        return (
            REGISTRY.get_sample_value("billing_webhooks_received_total", {"outcome": "rejected", "reason": reason}) or 0
        )

    before = value("unstorable"), value("invalid_event")
    deliver(client, _with(id="evt_\u0000"))
    deliver(client, _nested(1000))
    assert (value("unstorable"), value("invalid_event")) == (before[0] + 1, before[1] + 1)
