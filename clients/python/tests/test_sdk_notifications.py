"""handle_notification(): signatures, ordering by version, redeliveries, other projects and types."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable

import pytest
from billing_client import InvalidNotification, InvalidSignature, Notification
from billing_client.signing import compute_signature, signature_header
from sdk_fakes import OLD_SECRET, SECRET, FakeService, item, notification_body, signed


def test_a_pushed_update_is_served_without_asking_the_service(service: FakeService) -> None:
    received: list[Notification] = []
    with service.client(on_notification=received.append) as client:
        body = notification_body("u1", 1, [item("pro")], notification_id="ntf_1")

        notification = client.handle_notification(body, signed(body))

        assert (notification.id, notification.type, notification.outcome) == (
            "ntf_1",
            "entitlements.updated",
            "applied",
        )
        assert notification.project_id == 1 and notification.data["version"] == 1
        assert client.has_feature("u1", "pro") is True
        assert client.has_feature("u1", "labs") is False
        assert received == [notification]
    assert service.requests == []


def test_two_updates_delivered_in_reverse_order_leave_the_newer(service: FakeService) -> None:
    with service.client() as client:
        newer = notification_body("u1", 2, [item("labs")])
        older = notification_body("u1", 1, [item("pro")])

        assert client.handle_notification(newer, signed(newer)).outcome == "applied"
        assert client.handle_notification(older, signed(older)).outcome == "stale"

        assert client.has_feature("u1", "labs") is True
        assert client.has_feature("u1", "pro") is False
        assert [e.feature_code for e in client.entitlements("u1")] == ["labs"]
    assert service.requests == []


def test_a_redelivery_of_the_same_id_is_a_no_op(service: FakeService) -> None:
    received: list[Notification] = []
    with service.client(on_notification=received.append) as client:
        first = notification_body("u1", 1, [item("pro")], notification_id="ntf_same")
        revoke = notification_body("u1", 2, [])
        client.handle_notification(first, signed(first))
        client.handle_notification(revoke, signed(revoke))

        again = client.handle_notification(first, signed(first))

        assert again.outcome == "duplicate"
        assert [n.outcome for n in received] == ["applied", "applied"]  # the callback saw it once
        assert client.has_feature("u1", "pro") is False


def test_a_notification_whose_callback_failed_is_handled_again_on_redelivery(service: FakeService) -> None:
    calls: list[str] = []

    def flaky(notification: Notification) -> None:
        calls.append(notification.id)
        if len(calls) == 1:
            raise RuntimeError("the app's own handler failed")

    with service.client(on_notification=flaky) as client:
        body = notification_body("u1", 1, [item("pro")], notification_id="ntf_retry")
        with pytest.raises(RuntimeError):
            client.handle_notification(body, signed(body))

        # Applied again (an equal version is stored: the push is that version's authority); callback ran.
        assert client.handle_notification(body, signed(body)).outcome == "applied"
        assert calls == ["ntf_retry", "ntf_retry"]


def test_a_bad_signature_is_refused_and_changes_nothing(service: FakeService) -> None:
    with service.client() as client:
        body = notification_body("u1", 1, [item("pro")])
        tampered = body.replace(b'"pro"', b'"enterprise"')

        with pytest.raises(InvalidSignature, match="no v1 signature matches"):
            client.handle_notification(tampered, signed(body))
        with pytest.raises(InvalidSignature, match="no v1 signature matches"):
            client.handle_notification(body, signed(body, "whsec_someone_else"))
        with pytest.raises(InvalidSignature, match="no X-Billing-Signature"):
            client.handle_notification(body, {})
        with pytest.raises(InvalidSignature, match="no timestamp"):
            client.handle_notification(body, {"X-Billing-Signature": "v1=abc"})

        assert client.has_feature("u1", "enterprise") is False
    assert len(service.requests) == 1  # the has_feature above, answered by the service


@pytest.mark.parametrize("age", [301, -301])
def test_a_timestamp_outside_the_tolerance_is_refused(service: FakeService, age: int) -> None:
    with service.client(signature_tolerance=300) as client:
        body = notification_body("u1", 1, [item("pro")])
        with pytest.raises(InvalidSignature, match="tolerance"):
            client.handle_notification(body, signed(body, timestamp=int(time.time()) - age))

        inside = notification_body("u1", 1, [item("pro")])
        timestamp = int(time.time()) - (age - 11 if age > 0 else age + 11)
        assert client.handle_notification(inside, signed(inside, timestamp=timestamp)).outcome == "applied"


def test_during_a_rotation_either_secret_verifies(service: FakeService) -> None:
    body = notification_body("u1", 1, [item("pro")])
    both = signed(body, OLD_SECRET, SECRET)
    assert both["X-Billing-Signature"].count("v1=") == 2

    for configured in (SECRET, OLD_SECRET, [OLD_SECRET, SECRET]):
        with service.client(notification_secrets=configured) as client:
            assert client.handle_notification(body, both).outcome == "applied"

    # A receiver that lists both secrets accepts a body signed by either alone.
    with service.client(notification_secrets=[OLD_SECRET, SECRET]) as client:
        only_new = notification_body("u2", 1, [item("pro")])
        assert client.handle_notification(only_new, signed(only_new, SECRET)).outcome == "applied"
    with service.client(notification_secrets=SECRET) as client, pytest.raises(InvalidSignature):
        client.handle_notification(body, signed(body, OLD_SECRET))


def test_the_signature_is_compared_in_constant_time(service: FakeService, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with service.client() as client:
        body = notification_body("u1", 1, [item("pro")])
        timestamp = int(time.time())
        client.handle_notification(body, signed(body, timestamp=timestamp))

    expected = compute_signature(body, SECRET, timestamp).encode()
    assert compared == [(expected, expected)]


def test_the_header_is_found_whatever_its_spelling(service: FakeService) -> None:
    with service.client() as client:
        for version, name in enumerate(("X-Billing-Signature", "x-billing-signature", "HTTP_X_BILLING_SIGNATURE"), 1):
            body = notification_body("u1", version, [item("pro")])
            header = signature_header(body, SECRET)
            assert client.handle_notification(body, {name: header}).outcome == "applied"


def test_another_projects_notification_is_ignored(service: FakeService) -> None:
    received: list[Notification] = []
    with service.client(on_notification=received.append) as client:
        body = notification_body("u1", 1, [item("pro")], project_id=2)

        assert client.handle_notification(body, signed(body)).outcome == "other_project"

        assert received == []
        assert client.has_feature("u1", "pro") is False


def test_an_unknown_type_is_returned_to_the_caller(service: FakeService) -> None:
    received: list[Notification] = []
    with service.client(on_notification=received.append) as client:
        body = notification_body("", 0, [], kind="invoice.paid", data={"invoice_id": 9, "amount": 1499})

        notification = client.handle_notification(body, signed(body))

        assert (notification.type, notification.outcome, notification.data["amount"]) == (
            "invoice.paid",
            "unhandled",
            1499,
        )
        assert received == [notification]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"id": "n1", "type": "x", "project_id": 1, "data": {}}).encode(), "incomplete"),
        (
            json.dumps(
                {"id": "n1", "type": "entitlements.updated", "created": 1, "project_id": 1, "data": {}}
            ).encode(),
            "entitlements.updated data is malformed",
        ),
    ],
)
def test_a_signed_body_that_is_not_an_envelope_is_invalid(service: FakeService, body: bytes, message: str) -> None:
    with service.client() as client, pytest.raises(InvalidNotification, match=message):
        client.handle_notification(body, signed(body))


def test_without_a_configured_secret_nothing_verifies(service: FakeService) -> None:
    with service.client(notification_secrets=()) as client:
        body = notification_body("u1", 1, [item("pro")])
        with pytest.raises(InvalidSignature, match="no notification secret"):
            client.handle_notification(body, signed(body))
