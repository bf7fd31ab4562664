from __future__ import annotations

import pytest
from django.test import Client

from billing_service.cache_config import redis_cache
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.mark.parametrize("path", ["/health", "/healthz", "/live"])
def test_liveness_probes_answer_ok_without_a_key(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_checks_the_database_and_the_cache(client: Client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok"}}


def test_ready_reports_a_dead_cache_as_503_naming_it(client: Client, settings: object) -> None:
    settings.CACHES = {"default": redis_cache(DEAD_REDIS, socket_timeout=0.1, key_prefix="t")}  # type: ignore[attr-defined]
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["cache"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("error: ")


def test_ready_reports_a_dead_broker_when_one_is_configured(client: Client, settings: object) -> None:
    from billing_service.celery import app

    settings.BROKER_CONFIGURED = True  # type: ignore[attr-defined]
    original = app.conf.broker_url
    app.conf["broker_url"] = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/ready")
    finally:
        app.conf["broker_url"] = original
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


def test_api_keys_still_resolve_from_the_database_when_the_cache_is_dead(alice: Tenant, settings: object) -> None:
    settings.CACHES = {"default": redis_cache(DEAD_REDIS, socket_timeout=0.1, key_prefix="t")}  # type: ignore[attr-defined]
    response = alice.client().get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["project"]["slug"] == "alpha"
