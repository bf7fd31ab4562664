"""Request ids, request logs and the last line of defence against unhandled exceptions."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse, JsonResponse

log = structlog.get_logger("billing.request")

# An inbound id is reused so that a micro-app's own id follows the call into our logs; anything
# that could smuggle log noise (spaces, newlines, quotes) is replaced by a fresh one.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_QUIET_PATHS = frozenset({"/health", "/healthz", "/live", "/ready", "/metrics", "/api/v1/observability/prometheus"})


def request_id_of(request: HttpRequest) -> str:
    return str(getattr(request, "request_id", ""))


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        inbound = request.headers.get("X-Request-ID", "")
        request_id = inbound if _SAFE_REQUEST_ID.match(inbound) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        # The context is cleared when the next request starts, not when this one ends: Django logs
        # a failed request (django.request) after the middleware chain has returned.
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        level = "debug" if request.path in _QUIET_PATHS else "info"
        getattr(log, level)(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=duration_ms,
        )
        return response


class ApiErrorMiddleware:
    """Answers an exception that escaped a view as JSON 500 with the request id, never a traceback."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # With DEBUG on, Django answers an unknown URL with its HTML debug page, not handler404.
        if (
            response.status_code == 404
            and request.path.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return JsonResponse({"detail": "Not found."}, status=404)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None  # the admin and pages keep Django's own (DEBUG-aware) handling
        log.exception("unhandled_exception", path=request.path, error_type=type(exception).__name__)
        return JsonResponse(
            {"detail": "Internal server error.", "request_id": request_id_of(request)},
            status=500,
        )
