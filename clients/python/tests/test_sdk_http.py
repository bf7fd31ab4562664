"""The calls, their typed answers and errors, retries with backoff, Retry-After and Idempotency-Key."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from email.utils import formatdate

import billing_client
import httpx
import pytest
from billing_client import (
    BadRequest,
    BillingError,
    CheckoutSession,
    CheckResult,
    Conflict,
    Forbidden,
    Grant,
    NotFound,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
)
from billing_client._http import retry_after_seconds
from sdk_fakes import API_KEY, FakeService

CHECKOUT = "/api/v1/checkout/session"
CHECKOUT_ANSWER = {"checkout_url": "https://pay.test/cs_1", "session_id": "cs_1", "expires_at": "2026-11-23T10:00:00Z"}


def _checkout(client: billing_client.BillingClient, idempotency_key: str | None = None) -> CheckoutSession:
    return client.checkout_session(
        "u1",
        "price_1",
        success_url="https://app.test/ok",
        cancel_url="https://app.test/cancel",
        idempotency_key=idempotency_key,
    )


def test_every_request_carries_the_key_and_the_sdks_user_agent(
    service: FakeService, client: billing_client.BillingClient
) -> None:
    client.has_feature("u1", "pro")

    headers = service.requests[0].headers
    assert headers["X-API-Key"] == API_KEY
    assert headers["User-Agent"] == f"billing-client/{billing_client.__version__}"


def test_check_always_asks_the_service(service: FakeService, client: billing_client.BillingClient) -> None:
    service.script(
        "GET",
        "/api/v1/entitlements/check",
        httpx.Response(200, json={"feature_code": "pro", "active": True, "valid_to": "2030-01-01T00:00:00Z"}),
    )

    first = client.check("u1", "pro")
    second = client.check("u1", "pro")

    assert first == CheckResult("pro", True, datetime(2030, 1, 1, tzinfo=UTC))
    assert second == CheckResult("pro", False, None)  # the fake's own answer: nothing cached in between
    assert [dict(r.url.params) for r in service.requests] == [
        {"user_id": "u1", "project_id": "1", "feature_code": "pro"}
    ] * 2


def test_checkout_session_sends_the_body_and_parses_the_answer(
    service: FakeService, client: billing_client.BillingClient
) -> None:
    service.script("POST", CHECKOUT, httpx.Response(201, json=CHECKOUT_ANSWER))

    session = client.checkout_session(
        "u1",
        "price_1",
        success_url="https://app.test/ok",
        cancel_url="https://app.test/cancel",
        mode="payment",
        quantity=2,
        metadata={"campaign": "spring"},
    )

    assert session == CheckoutSession("https://pay.test/cs_1", "cs_1", datetime(2026, 11, 23, 10, tzinfo=UTC))
    assert json.loads(service.requests[0].content) == {
        "user_id": "u1",
        "project_id": 1,
        "price_id": "price_1",
        "mode": "payment",
        "success_url": "https://app.test/ok",
        "cancel_url": "https://app.test/cancel",
        "quantity": 2,
        "metadata": {"campaign": "spring"},
    }


def test_portal_grant_and_revoke(service: FakeService, client: billing_client.BillingClient) -> None:
    service.script("POST", "/api/v1/portal/session", httpx.Response(201, json={"portal_url": "https://portal.test/p"}))
    grant_answer = {
        "grant_id": 7,
        "user_id": "u1",
        "feature_code": "labs",
        "granted_by": "support",
        "reason": "pilot",
        "valid_from": "2026-11-01T09:00:00Z",
        "valid_to": "2027-01-01T00:00:00Z",
    }
    service.script("POST", "/api/v1/admin/grant", httpx.Response(201, json=grant_answer))
    service.script("POST", "/api/v1/admin/revoke", httpx.Response(200, json={"revoked": 0}))

    assert client.portal_session("u1", "https://app.test/account") == "https://portal.test/p"
    grant = client.grant("u1", "labs", granted_by="support", reason="pilot", valid_to=datetime(2027, 1, 1, tzinfo=UTC))
    assert isinstance(grant, Grant) and grant.grant_id == 7 and grant.valid_to == datetime(2027, 1, 1, tzinfo=UTC)
    assert client.revoke("u1", "labs", reason="done", revoked_by="support") == 0

    portal, granted, revoked = (json.loads(r.content) for r in service.requests)
    assert portal == {"user_id": "u1", "project_id": 1, "return_url": "https://app.test/account"}
    assert granted["valid_to"] == "2027-01-01T00:00:00Z" and "valid_from" not in granted
    assert revoked == {
        "user_id": "u1",
        "project_id": 1,
        "feature_code": "labs",
        "reason": "done",
        "revoked_by": "support",
    }
    with pytest.raises(ValueError, match="timezone-aware"):
        client.grant("u1", "labs", granted_by="support", reason="x", valid_to=datetime(2027, 1, 1))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (422, BillingError),
    ],
)
def test_a_refusal_raises_its_own_exception_at_once(
    service: FakeService, client: billing_client.BillingClient, status: int, error: type[BillingError]
) -> None:
    service.script("POST", CHECKOUT, httpx.Response(status, json={"detail": "refused for a reason"}))

    with pytest.raises(error) as raised:
        _checkout(client)

    assert type(raised.value) is error
    assert (raised.value.status_code, raised.value.detail) == (status, "refused for a reason")
    assert raised.value.body == {"detail": "refused for a reason"}
    assert len(service.requests) == 1  # a 4xx is not retried


def test_field_errors_are_kept_and_summarised(service: FakeService, client: billing_client.BillingClient) -> None:
    errors = {"price_id": ["Not a price of this project."], "success_url": ["Not allowed."]}
    service.script("POST", CHECKOUT, httpx.Response(400, json=errors))

    with pytest.raises(BadRequest) as raised:
        _checkout(client)

    assert raised.value.body == errors
    assert raised.value.detail == "price_id: Not a price of this project., success_url: Not allowed."


def test_a_stripe_failure_names_its_request_id(service: FakeService) -> None:
    answer = {"detail": "Stripe is down", "stripe_request_id": "req_123"}
    with service.client(max_retries=1) as client:
        service.script("POST", CHECKOUT, httpx.Response(502, json=answer), httpx.Response(502, json=answer))
        with pytest.raises(ServerError) as raised:
            _checkout(client)

    assert (raised.value.status_code, raised.value.stripe_request_id) == (502, "req_123")
    assert len(service.requests) == 2


def test_5xx_is_retried_until_it_succeeds(service: FakeService, client: billing_client.BillingClient) -> None:
    service.script("GET", "/api/v1/entitlements", httpx.Response(503), httpx.Response(500, text="oops"))

    assert client.entitlements("u1") == []
    assert len(service.requests) == 3


def test_5xx_after_the_last_retry_raises_server_error(service: FakeService) -> None:
    with service.client(max_retries=2) as client:
        service.script("GET", "/api/v1/entitlements/check", *[httpx.Response(500)] * 3)
        with pytest.raises(ServerError) as raised:
            client.check("u1", "pro")
    assert raised.value.status_code == 500
    assert len(service.requests) == 3


def test_backoff_grows_between_attempts(service: FakeService) -> None:
    with service.client(max_retries=3, backoff_base=0.04) as client:
        service.script("GET", "/api/v1/entitlements/check", *[httpx.Response(503)] * 4)
        with pytest.raises(ServerError):
            client.check("u1", "pro")

    times = service.request_times
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Attempt n waits between half and all of base * 2**n (jitter); only the lower bounds are stable.
    assert [gap >= 0.04 * 2**n / 2 for n, gap in enumerate(gaps)] == [True, True, True]
    assert gaps[2] > gaps[0]


def test_429_waits_for_retry_after(service: FakeService, client: billing_client.BillingClient) -> None:
    service.script("GET", "/api/v1/entitlements/check", httpx.Response(429, headers={"Retry-After": "1"}))

    assert client.check("u1", "pro").active is False

    first, second = service.request_times
    assert second - first >= 1.0
    assert len(service.requests) == 2


def test_429_past_the_retries_raises_rate_limited_with_retry_after(service: FakeService) -> None:
    with service.client(max_retries=1) as client:
        limited = httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "slow down"})
        service.script("GET", "/api/v1/entitlements/check", limited, limited)
        with pytest.raises(RateLimited) as raised:
            client.check("u1", "pro")

    assert (raised.value.status_code, raised.value.retry_after, raised.value.detail) == (429, 0.0, "slow down")
    assert len(service.requests) == 2


def test_a_retry_after_longer_than_the_client_waits_raises_at_once(service: FakeService) -> None:
    with service.client(max_retry_wait=5) as client:
        service.script("GET", "/api/v1/entitlements/check", httpx.Response(429, headers={"Retry-After": "60"}))
        started = time.monotonic()
        with pytest.raises(RateLimited) as raised:
            client.check("u1", "pro")

    assert raised.value.retry_after == 60.0
    assert time.monotonic() - started < 1
    assert len(service.requests) == 1


def test_connection_errors_are_retried_then_raise_service_unavailable(service: FakeService) -> None:
    with service.client(max_retries=2) as client:
        service.script(
            "GET", "/api/v1/entitlements/check", *[httpx.ConnectError("refused"), httpx.ReadTimeout("slow")] * 2
        )
        with pytest.raises(ServiceUnavailable) as raised:
            client.check("u1", "pro")

    assert raised.value.status_code is None
    assert len(service.requests) == 3


def test_the_idempotency_key_is_the_same_on_every_retry(
    service: FakeService, client: billing_client.BillingClient
) -> None:
    service.script(
        "POST",
        CHECKOUT,
        httpx.Response(500),
        httpx.ConnectError("reset"),
        httpx.Response(201, json=CHECKOUT_ANSWER),
        httpx.Response(201, json=CHECKOUT_ANSWER),
    )

    _checkout(client)
    _checkout(client)

    keys = [r.headers["Idempotency-Key"] for r in service.requests]
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2] and keys[0].startswith("billing-client-")
    assert keys[3] != keys[0]  # another call, another key


def test_the_callers_idempotency_key_is_sent_as_given(
    service: FakeService, client: billing_client.BillingClient
) -> None:
    service.script("POST", CHECKOUT, httpx.Response(201, json=CHECKOUT_ANSWER))
    service.script("POST", "/api/v1/portal/session", httpx.Response(201, json={"portal_url": "https://portal.test/p"}))

    _checkout(client, idempotency_key="order-42")
    client.portal_session("u1", "https://app.test/account", idempotency_key="portal-42")

    assert [r.headers["Idempotency-Key"] for r in service.requests] == ["order-42", "portal-42"]


def test_an_answer_of_another_shape_is_a_billing_error(
    service: FakeService, client: billing_client.BillingClient
) -> None:
    service.script("GET", "/api/v1/entitlements/check", httpx.Response(200, json={"unexpected": True}))
    service.script("GET", "/api/v1/entitlements", httpx.Response(200, text="<html>proxy</html>"))

    with pytest.raises(BillingError, match="unexpected answer"):
        client.check("u1", "pro")
    with pytest.raises(BillingError, match="not JSON"):
        client.entitlements("u1")


def test_a_transport_error_that_would_recur_is_not_retried(service: FakeService) -> None:
    with service.client(max_retries=3) as client:
        service.script("GET", "/api/v1/entitlements/check", httpx.UnsupportedProtocol("ftp://"))
        with pytest.raises(ServiceUnavailable):
            client.check("u1", "pro")

    assert len(service.requests) == 1


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds("7", now=lambda: now) == 7.0
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now=lambda: now) == 30.0
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now=lambda: now) == 0.0
    assert retry_after_seconds("soon", now=lambda: now) is None
    assert retry_after_seconds(None) is None
