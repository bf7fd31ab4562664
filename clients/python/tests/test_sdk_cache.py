"""has_feature() and entitlements() from the local cache: hits, expiry, windows, versions, invalidation."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
from billing_client import BillingClient, Entitlement
from sdk_fakes import FakeService, item, notification_body, signed

ENTITLEMENTS = "/api/v1/entitlements"


def test_a_fresh_cache_answers_without_any_request(service: FakeService, client: BillingClient) -> None:
    service.entitlements["u1"] = [item("pro"), item("labs", source="grant", source_id=7)]

    assert client.has_feature("u1", "pro") is True
    assert client.has_feature("u1", "labs") is True
    assert client.has_feature("u1", "enterprise") is False
    assert [client.has_feature("u1", "pro") for _ in range(100)] == [True] * 100

    assert len(service.requests) == 1
    request = service.requests[0]
    assert request.url.path == ENTITLEMENTS
    assert dict(request.url.params) == {"user_id": "u1", "project_id": "1"}


def test_users_are_cached_apart(service: FakeService, client: BillingClient) -> None:
    service.entitlements["u1"] = [item("pro")]

    assert client.has_feature("u1", "pro") is True
    assert client.has_feature("u2", "pro") is False
    assert client.has_feature("u2", "pro") is False

    assert [r.url.params["user_id"] for r in service.requests] == ["u1", "u2"]


def test_an_entry_older_than_the_ttl_is_fetched_again(service: FakeService) -> None:
    service.entitlements["u1"] = [item("pro")]
    with service.client(cache_ttl=0.05) as client:
        assert client.has_feature("u1", "pro") is True
        service.entitlements["u1"] = []
        assert client.has_feature("u1", "pro") is True  # still fresh: the old answer
        time.sleep(0.08)
        assert client.has_feature("u1", "pro") is False

    assert len(service.calls(ENTITLEMENTS)) == 2


def test_an_entitlement_that_ends_while_cached_turns_false_without_a_request(
    service: FakeService, client: BillingClient
) -> None:
    now = datetime.now(UTC)
    service.entitlements["u1"] = [item("trial", valid_to=now + timedelta(milliseconds=300))]

    assert client.has_feature("u1", "trial") is True
    time.sleep(0.35)
    assert client.has_feature("u1", "trial") is False
    assert [e.active for e in client.entitlements("u1")] == [False]

    assert len(service.requests) == 1


def test_an_entitlement_that_starts_while_cached_turns_true_without_a_request(
    service: FakeService, client: BillingClient
) -> None:
    start = datetime.now(UTC) + timedelta(milliseconds=300)
    service.entitlements["u1"] = [item("pro", valid_from=start)]

    assert client.has_feature("u1", "pro") is False
    time.sleep(0.35)
    assert client.has_feature("u1", "pro") is True

    assert len(service.requests) == 1


def test_entitlements_are_typed_with_parsed_instants(service: FakeService, client: BillingClient) -> None:
    end = datetime(2031, 1, 1, tzinfo=UTC)
    service.entitlements["u1"] = [item("pro", valid_to=end), item("labs", source="grant", source_id=7)]

    pro, labs = client.entitlements("u1")

    assert isinstance(pro, Entitlement)
    assert (pro.feature_code, pro.active, pro.source, pro.source_id, pro.valid_to) == (
        "pro",
        True,
        "subscription",
        12,
        end,
    )
    assert labs.valid_to is None and labs.source == "grant" and labs.source_id == 7
    assert labs.valid_from.tzinfo is not None
    assert client.has_feature("u1", "labs") is True
    assert len(service.requests) == 1  # the same cache serves both


def test_invalidate_makes_the_next_call_ask_the_service(service: FakeService, client: BillingClient) -> None:
    service.entitlements["u1"] = [item("pro")]
    assert client.has_feature("u1", "pro") is True

    service.entitlements["u1"] = []
    client.invalidate("u1")

    assert client.has_feature("u1", "pro") is False
    assert len(service.calls(ENTITLEMENTS)) == 2


def test_a_fetch_that_started_before_a_push_does_not_overwrite_it(service: FakeService, client: BillingClient) -> None:
    # The service answers version 1 (no feature); while that answer travels, version 2 (pro) is pushed.
    service.entitlements["u1"], service.versions["u1"] = [], 1
    push = notification_body("u1", 2, [item("pro")])

    def push_during_the_fetch(request: httpx.Request) -> None:
        if request.url.path == ENTITLEMENTS:
            service.on_request = None
            assert client.handle_notification(push, signed(push)).outcome == "applied"

    service.on_request = push_during_the_fetch

    assert client.has_feature("u1", "pro") is True  # answered from the newer, pushed version
    assert client.has_feature("u1", "pro") is True
    assert len(service.requests) == 1


def test_an_equal_version_from_a_fetch_refreshes_the_ttl(service: FakeService) -> None:
    push = notification_body("u1", 3, [item("pro")])
    service.entitlements["u1"], service.versions["u1"] = [item("pro")], 3
    with service.client(cache_ttl=0.1) as client:
        client.handle_notification(push, signed(push))
        time.sleep(0.15)
        assert client.has_feature("u1", "pro") is True  # stale: fetched, same version
        assert client.has_feature("u1", "pro") is True  # fresh again: no request

    assert len(service.requests) == 1


def test_a_fetch_of_a_lower_version_leaves_the_cache_at_the_higher_one(service: FakeService) -> None:
    push = notification_body("u1", 5, [item("pro")])
    service.entitlements["u1"], service.versions["u1"] = [], 4  # a lagging replica, say
    with service.client(cache_ttl=0.05) as client:
        client.handle_notification(push, signed(push))
        time.sleep(0.08)
        assert client.has_feature("u1", "pro") is True
        older = notification_body("u1", 4, [])
        assert client.handle_notification(older, signed(older)).outcome == "stale"
        assert client.has_feature("u1", "pro") is True


def test_a_fetch_of_the_pushed_version_keeps_the_pushed_list(service: FakeService) -> None:
    # The service's own cache may answer a fetch with the list of just before a change, under the
    # new version (its invalidation runs after commit): the push is that version's authority.
    push = notification_body("u1", 5, [item("pro")])
    service.entitlements["u1"], service.versions["u1"] = [], 5
    with service.client(cache_ttl=0.05) as client:
        client.handle_notification(push, signed(push))
        time.sleep(0.08)
        assert client.has_feature("u1", "pro") is True  # refetched (stale entry), list kept
        assert len(service.calls("/api/v1/entitlements")) == 1


def test_an_answer_in_flight_when_the_user_is_invalidated_is_not_cached(
    service: FakeService, client: BillingClient
) -> None:
    service.entitlements["u1"] = [item("pro")]

    def grant_revoked_meanwhile(request: httpx.Request) -> None:
        service.on_request = None
        client.invalidate("u1")

    service.on_request = grant_revoked_meanwhile

    assert client.has_feature("u1", "pro") is True  # the answer is used once ...
    service.entitlements["u1"] = []
    assert client.has_feature("u1", "pro") is False  # ... but was not kept
    assert len(service.requests) == 2


def test_an_answer_without_a_version_counts_as_version_zero(service: FakeService, client: BillingClient) -> None:
    service.entitlements["u1"] = [item("pro")]
    assert client.has_feature("u1", "pro") is True

    push = notification_body("u1", 1, [])
    assert client.handle_notification(push, signed(push)).outcome == "applied"
    assert client.has_feature("u1", "pro") is False


def test_grant_and_revoke_drop_the_users_cached_list(service: FakeService, client: BillingClient) -> None:
    service.script(
        "POST",
        "/api/v1/admin/grant",
        httpx.Response(
            201,
            json={
                "grant_id": 7,
                "user_id": "u1",
                "feature_code": "labs",
                "granted_by": "support",
                "reason": "pilot",
                "valid_from": "2026-11-01T09:00:00Z",
                "valid_to": None,
            },
        ),
    )
    service.script("POST", "/api/v1/admin/revoke", httpx.Response(200, json={"revoked": 1}))
    assert client.has_feature("u1", "labs") is False

    service.entitlements["u1"] = [item("labs", source="grant", source_id=7)]
    client.grant("u1", "labs", granted_by="support", reason="pilot")
    assert client.has_feature("u1", "labs") is True

    service.entitlements["u1"] = []
    assert client.revoke("u1", "labs", reason="pilot over") == 1
    assert client.has_feature("u1", "labs") is False

    assert len(service.calls(ENTITLEMENTS)) == 3


def test_many_threads_share_one_fetch_and_the_newest_push(service: FakeService, client: BillingClient) -> None:
    service.entitlements["u1"] = [item("pro")]
    release = threading.Event()

    def slow_fetch(request: httpx.Request) -> None:
        release.wait(5)  # hold the first fetch so that the other threads miss together

    service.on_request = slow_fetch
    answers: list[bool] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            answers.extend(client.has_feature("u1", "pro") for _ in range(200))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    def pusher(first: int) -> None:
        for version in range(first, 400, 4):
            body = notification_body("u1", version, [item("pro")])
            client.handle_notification(body, signed(body))

    readers = [threading.Thread(target=reader) for _ in range(16)]
    pushers = [threading.Thread(target=pusher, args=(first,)) for first in range(4)]
    for thread in readers:
        thread.start()
    time.sleep(0.1)
    release.set()
    for thread in pushers:
        thread.start()
    for thread in readers + pushers:
        thread.join(10)

    assert errors == []
    assert answers == [True] * (16 * 200)
    assert len(service.requests) == 1
    stale = notification_body("u1", 398, [])
    assert client.handle_notification(stale, signed(stale)).outcome == "stale"  # 399 is cached
    assert client.has_feature("u1", "pro") is True
