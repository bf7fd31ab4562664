"""on_unavailable against a real server on 127.0.0.1 that stops, or a port where nothing listens."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from billing_client import BillingClient, OnUnavailable, ServiceUnavailable
from sdk_fakes import API_KEY, PROJECT_ID, FakeService, free_port, item, live_service


def _client(url: str, *, on_unavailable: OnUnavailable = "fail_closed", cache_ttl: float = 60.0) -> BillingClient:
    return BillingClient(
        url,
        API_KEY,
        PROJECT_ID,
        on_unavailable=on_unavailable,
        cache_ttl=cache_ttl,
        max_retries=1,
        backoff_base=0.001,
        timeout=2.0,
    )


@pytest.mark.parametrize(("policy", "answer"), [("fail_closed", False), ("fail_open", True), ("last_known", False)])
def test_with_nothing_cached_a_stopped_service_gets_the_policys_answer(policy: OnUnavailable, answer: bool) -> None:
    with _client(f"http://127.0.0.1:{free_port()}", on_unavailable=policy) as client:
        assert client.has_feature("u1", "pro") is answer


def test_last_known_answers_the_cached_list_past_its_ttl(caplog: pytest.LogCaptureFixture) -> None:
    with live_service() as service, _client(service.url, on_unavailable="last_known", cache_ttl=0.1) as client:
        service.entitlements["u1"] = [item("pro")]
        assert client.has_feature("u1", "pro") is True
        service.stop()
        time.sleep(0.15)

        with caplog.at_level(logging.WARNING, logger="billing_client"):
            assert client.has_feature("u1", "pro") is True
            assert client.has_feature("u1", "labs") is False
            assert [e.feature_code for e in client.entitlements("u1")] == ["pro"]

        assert len(service.seen) == 1
    warnings = [r for r in caplog.records if r.name == "billing_client" and r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the failure; the answers during the cooldown that follows log at debug
    assert "by policy last_known" in warnings[0].getMessage()


@pytest.mark.parametrize(("policy", "answer"), [("fail_closed", False), ("fail_open", True)])
def test_fail_closed_and_fail_open_ignore_the_stale_cache(policy: OnUnavailable, answer: bool) -> None:
    with live_service() as service, _client(service.url, on_unavailable=policy, cache_ttl=0.1) as client:
        service.entitlements["u1"] = [item("labs")]
        assert client.has_feature("u1", "labs") is True
        assert client.has_feature("u1", "pro") is False
        service.stop()
        time.sleep(0.15)

        assert client.has_feature("u1", "pro") is answer
        assert client.has_feature("u1", "labs") is answer


def test_entitlements_under_each_policy_when_the_service_is_down() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with _client(dead, on_unavailable="fail_closed") as client:
        assert client.entitlements("u1") == []
    with _client(dead, on_unavailable="last_known") as client:
        assert client.entitlements("u1") == []
    with _client(dead, on_unavailable="fail_open") as client, pytest.raises(ServiceUnavailable):
        client.entitlements("u1")


def test_check_is_never_answered_by_a_policy() -> None:
    with (
        _client(f"http://127.0.0.1:{free_port()}", on_unavailable="fail_open") as client,
        pytest.raises(ServiceUnavailable),
    ):
        client.check("u1", "pro")


def test_after_a_failure_the_client_waits_for_the_cooldown_before_calling_again(service: FakeService) -> None:
    with service.client(max_retries=1, unavailable_cooldown=0.2, on_unavailable="fail_open") as client:
        service.script("GET", "/api/v1/entitlements", *[httpx.ConnectError("refused")] * 2)
        assert client.has_feature("u1", "pro") is True
        assert len(service.requests) == 2  # the attempt and its retry

        assert client.has_feature("u1", "pro") is True
        assert len(service.requests) == 2  # cooling down: no request

        time.sleep(0.25)
        assert client.has_feature("u1", "pro") is False  # the service answers again
        assert len(service.requests) == 3


def test_one_pooled_connection_serves_successive_calls() -> None:
    with live_service() as service, _client(service.url, cache_ttl=0) as client:
        for user in ("u1", "u2", "u3", "u1"):
            client.has_feature(user, "pro")

        assert [seen["query"]["user_id"] for seen in service.seen] == ["u1", "u2", "u3", "u1"]
        assert len({seen["peer"] for seen in service.seen}) == 1
        assert service.seen[0]["X-API-Key"] == API_KEY
