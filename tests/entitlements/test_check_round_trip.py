"""The warm check in one Redis round trip (apps/entitlements/api_check.py), answering as DRF did."""

from __future__ import annotations

from typing import Any

import pytest
import time_machine
import yaml
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY
from redis import Redis
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError

from apps.entitlements import api_check
from apps.entitlements.grants import grant_create, grants_revoke
from apps.projects.models import ApiKey
from apps.projects.selectors import api_key_cache
from apps.projects.services import api_key_revoke, app_update
from billing_service.cache_config import redis_cache
from tests.conftest import Tenant, committed

pytestmark = pytest.mark.django_db


def _url(tenant: Tenant, user: str = "u1", feature: str = "pro") -> str:
    return f"/api/v1/entitlements/check?user_id={user}&project_id={tenant.project.pk}&feature_code={feature}"


def _grant(tenant: Tenant, user: str = "u1", feature: str = "pro") -> None:
    with committed():
        grant_create(project=tenant.project, user_id=user, feature_code=feature, granted_by="t", reason="r")


@pytest.fixture
def drf_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests the check handed to the DRF view (the others it answered itself)."""
    calls: list[str] = []
    original = api_check._drf_view

    def spy(request: Any) -> Any:
        calls.append(request.get_full_path())
        return original(request)

    monkeypatch.setattr(api_check, "_drf_view", spy)
    return calls


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per write to Redis (a command, or a whole pipeline): the number of commands sent."""
    if not settings.REDIS_URL:
        pytest.skip("counts Redis round trips: run with REDIS_URL")
    sent: list[int] = []
    original = AbstractConnection.send_packed_command

    def spy(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(len(command) if isinstance(command, list) else 1)
        original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", spy)
    return sent


def test_a_warm_check_is_one_redis_round_trip_and_no_query(
    alice: Tenant, pro: str, round_trips: list[int], drf_calls: list[str]
) -> None:
    _grant(alice)
    api = alice.client()
    for _ in range(2):  # the first resolves the key through DRF, the second warms the memo
        assert api.get(_url(alice)).json()["active"] is True
    round_trips.clear()
    drf_calls.clear()
    with CaptureQueriesContext(connection) as queries:
        response = api.get(_url(alice))
    assert response.status_code == 200 and response.json()["active"] is True
    assert len(queries) == 0
    assert drf_calls == []
    assert len(round_trips) == 1  # key generation, entitlement generation, INCR + EXPIRE: one pipeline


def test_the_own_path_answers_byte_for_byte_as_the_drf_view(alice: Tenant, pro: str, drf_calls: list[str]) -> None:
    _grant(alice)
    api = alice.client()
    by_drf = api.get(_url(alice))  # a key this process has not seen goes through DRF
    assert len(drf_calls) == 1
    own = api.get(_url(alice))
    assert len(drf_calls) == 1  # answered by the check's own path
    assert own.status_code == by_drf.status_code == 200
    assert own.content == by_drf.content
    for header in ("Content-Type", "Allow", "X-Frame-Options", "X-Content-Type-Options", "Content-Length"):
        assert own.get(header) == by_drf.get(header), header
    assert own.json()["valid_to"] is None and own.json()["feature_code"] == "pro"


def test_every_refusal_is_drfs_own(alice: Tenant, bob: Tenant, pro: str, drf_calls: list[str]) -> None:
    api = alice.client()
    assert api.get(_url(alice)).status_code == 200  # warms this process's sight of the key
    drf_calls.clear()
    assert api.get(_url(bob)).json() == {"detail": "Project ID does not match"}
    assert api.get(f"/api/v1/entitlements/check?project_id={alice.project.pk}&feature_code=pro").status_code == 400
    assert api.get(_url(alice, feature="x" * 65)).status_code == 400
    assert api.get(_url(alice), HTTP_ACCEPT="text/html").status_code == 406
    assert api.post(_url(alice)).status_code == 405
    wrong = alice.key[:-4] + "AAAA"
    assert Client().get(_url(alice), HTTP_X_API_KEY=wrong).status_code == 401
    assert len(drf_calls) == 6


def test_a_revoked_key_or_a_lost_scope_is_seen_on_the_next_check(alice: Tenant, pro: str) -> None:
    api = alice.client()
    for _ in range(2):
        assert api.get(_url(alice)).status_code == 200
    with committed():
        app_update(app=alice.app, scopes=["checkout:write"])
    refused = api.get(_url(alice))
    assert refused.status_code == 403
    assert refused.json() == {"detail": "This API key lacks the scope(s): entitlements:read."}
    with committed():
        app_update(app=alice.app, scopes=["entitlements:read"])
    assert api.get(_url(alice)).status_code == 200
    with committed():
        api_key_revoke(key=ApiKey.objects.get(app=alice.app))
    assert api.get(_url(alice)).status_code == 401


def test_a_change_of_entitlements_is_seen_on_the_next_check(alice: Tenant, pro: str) -> None:
    api = alice.client()
    for _ in range(2):
        assert api.get(_url(alice)).json()["active"] is False
    _grant(alice)
    assert api.get(_url(alice)).json()["active"] is True
    with committed():
        grants_revoke(project=alice.project, user_id="u1", feature_code="pro", revoked_by="t", reason="r")
    assert api.get(_url(alice)).json()["active"] is False


@time_machine.travel("2026-11-22T10:00:10Z", tick=False)
def test_the_budget_is_counted_once_per_check_on_either_path(alice: Tenant, pro: str, drf_calls: list[str]) -> None:
    with committed():
        app_update(app=alice.app, rate_limit="3/min")
    api = alice.client()
    statuses = [api.get(_url(alice)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert drf_calls[0] and len(drf_calls) == 3  # the first (unseen key) and the two 429s
    limited = api.get(_url(alice))
    assert limited["Retry-After"] == "50"
    key_id = ApiKey.objects.get(app=alice.app).pk
    window = 1795341610 // 60  # 2026-11-22T10:00:10Z
    assert cache.get(f"throttle:{key_id}:{window}") == 6  # six requests, each counted once


def test_with_redis_dead_a_known_key_still_gets_the_right_answer(alice: Tenant, pro: str, settings: Any) -> None:
    api = alice.client()
    for _ in range(2):  # this process now knows the key: the check would take its own path
        assert api.get(_url(alice)).json()["active"] is False
    assert api_key_cache.latest(alice.key.split("_")[1]) is not None
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0", socket_timeout=0.05, key_prefix="t")}
    assert api.get(_url(alice)).json()["active"] is False  # from the database, not a 5xx
    _grant(alice)
    assert api.get(_url(alice)).json()["active"] is True  # never a denial for lack of a cache
    with committed():
        grants_revoke(project=alice.project, user_id="u1", feature_code="pro", revoked_by="t", reason="r")
    assert api.get(_url(alice)).json()["active"] is False  # nor a stale grant


def test_the_schema_still_documents_the_check(client: Client) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"]["/api/v1/entitlements/check"]["get"]
    assert operation["operationId"] == "entitlements_check"
    assert {p["name"] for p in operation["parameters"]} == {"user_id", "feature_code", "project_id"}
    assert "200" in operation["responses"]


def test_the_check_is_counted_in_the_request_metrics(alice: Tenant, pro: str) -> None:
    labels = {"status": "200", "view": "entitlements-check", "method": "GET"}
    name = "django_http_responses_total_by_status_view_method_total"
    before = REGISTRY.get_sample_value(name, labels) or 0.0
    api = alice.client()
    for _ in range(3):
        assert api.get(_url(alice)).status_code == 200
    assert REGISTRY.get_sample_value(name, labels) == before + 3


def test_the_script_is_loaded_again_after_redis_forgets_it(
    alice: Tenant, pro: str, round_trips: list[int], drf_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _grant(alice)
    api = alice.client()
    for _ in range(2):
        assert api.get(_url(alice)).json()["active"] is True
    # A restarted Redis has no scripts: the first EVALSHA answers NOSCRIPT. (Not SCRIPT FLUSH: that
    # would empty the script cache of a Redis other runs may share.)
    forgotten = [True]
    original = Redis.evalsha

    def evalsha(self: Redis, sha: str, numkeys: int, *args: Any) -> Any:
        if forgotten.pop() if forgotten else False:
            raise NoScriptError("NOSCRIPT No matching script.")
        return original(self, sha, numkeys, *args)

    monkeypatch.setattr(Redis, "evalsha", evalsha)
    drf_calls.clear()
    assert api.get(_url(alice)).json()["active"] is True
    assert drf_calls == []  # loaded again and answered on the check's own path
    assert forgotten == []
