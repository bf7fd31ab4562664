"""Liveness and readiness probes. Plain Django views: no API key, no throttling, no DB for /live."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = structlog.get_logger("billing.health")


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    # A round trip with a fresh value: with IGNORE_EXCEPTIONS on, a dead Redis does not raise,
    # it just fails to store, so only reading the value back tells.
    probe_key = "health:probe"
    token = uuid.uuid4().hex
    cache.set(probe_key, token, timeout=10)
    if cache.get(probe_key) != token:
        raise ConnectionError("cache did not return the value just written")


def check_broker() -> None:
    from billing_service.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=max(1, round(settings.CELERY_BROKER_CONNECTION_TIMEOUT)))


def readiness_checks() -> dict[str, Callable[[], None]]:
    checks: dict[str, Callable[[], None]] = {"database": check_database, "cache": check_cache}
    if settings.BROKER_CONFIGURED:
        checks["broker"] = check_broker
    return checks


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    failed: list[str] = []
    for name, check in readiness_checks().items():
        try:
            check()
        except Exception as exc:
            failed.append(name)
            # The class name only: this endpoint is unauthenticated, connection strings stay private.
            results[name] = f"error: {type(exc).__name__}"
            log.warning("readiness_check_failed", check=name, error=str(exc))
        else:
            results[name] = "ok"
    if failed:
        return JsonResponse({"status": "unavailable", "failed": failed, "checks": results}, status=503)
    return JsonResponse({"status": "ok", "checks": results})
