"""Request ids, request logs and the last line of defence against unhandled exceptions."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import structlog
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.common.errors import payload_too_large_detail
from apps.common.metrics import count_exception

log = structlog.get_logger("billing.request")

# An inbound id is reused so that a micro-app's own id follows the call into our logs; anything
# that could smuggle log noise (spaces, newlines, quotes) is replaced by a fresh one.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_QUIET_PATHS = frozenset({"/health", "/healthz", "/live", "/ready", "/metrics", "/api/v1/observability/prometheus"})


def in_api_lane(request: HttpRequest) -> bool:
    """Whether the request is for the key-authenticated API or a probe: no session, user or message."""
    path = request.path_info
    return path.startswith("/api/v1/") or path in _QUIET_PATHS


class _SiteOnly:
    """Runs the wrapped middleware for the admin and the pages only.

    Sessions, the logged-in user and flash messages serve the admin; the API authenticates every call
    by its key (DRF's request.user), and no API view or probe reads a session, Django's user or a
    message. Skipping them on those paths is most of what the stack cost a request there (the
    entitlement check's budget is a few hundred microseconds). Subclasses keep Django's classes, so
    the admin's checks (admin.E408-E410) still find them.
    """

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if in_api_lane(request):
            response: HttpResponse = self.get_response(request)  # type: ignore[attr-defined]
        else:
            response = super().__call__(request)  # type: ignore[misc]
        return response


class SiteSessionMiddleware(_SiteOnly, SessionMiddleware):
    pass


class SiteAuthenticationMiddleware(_SiteOnly, AuthenticationMiddleware):
    pass


class SiteMessageMiddleware(_SiteOnly, MessageMiddleware):
    pass


def request_id_of(request: HttpRequest) -> str:
    return str(getattr(request, "request_id", ""))


class RequestIdMiddleware:
    """Every request gets an id (logged, bound to its log lines, echoed as X-Request-ID) and a line.

    Cheap on every request: the inbound id is read from META (request.headers would build a mapping
    of every header), and the request line is built only when its level is enabled. structlog's
    processors (timestamp, context merge) run before the standard library drops a disabled level,
    so an unconditional debug() for every probe cost more than the probe.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._stdlib_log = logging.getLogger("billing.request")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        inbound = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = inbound if inbound and _SAFE_REQUEST_ID.match(inbound) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        # The context is cleared when the next request starts, not when this one ends: Django logs
        # a failed request (django.request) after the middleware chain has returned.
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        quiet = request.path in _QUIET_PATHS
        if self._stdlib_log.isEnabledFor(logging.DEBUG if quiet else logging.INFO):
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            getattr(log, "debug" if quiet else "info")(
                "request",
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=duration_ms,
            )
        return response


def _content_length(request: HttpRequest) -> int | None:
    """The declared body length; None when the header is not a number."""
    raw = request.META.get("CONTENT_LENGTH") or "0"
    # "²".isdigit() is True; and int() refuses more than 4300 digits (a ValueError, a 500 here).
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """A 4xx for input no view can handle, checked before any view or middleware reads it."""
    length = _content_length(request)
    if length is None:
        return _refused(request, 400, "The Content-Length header is not a number.", reason="bad_content_length")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    # Multipart uploads are bounded per part by Django's upload handlers, not by this limit.
    multipart = request.content_type == "multipart/form-data"
    if limit is not None and length > limit and not multipart:
        return _refused(request, 413, payload_too_large_detail(), reason="body_too_large")
    # PostgreSQL text cannot hold NUL: any path or query value that reaches a query would be a
    # DataError. The value is not echoed (it is not printable).
    try:
        query = request.GET.lists()
    except SuspiciousOperation:  # more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS
        return _refused(request, 400, "Too many query parameters.", reason="too_many_fields")
    if "\x00" in request.path or any(
        "\x00" in key or any("\x00" in value for value in values) for key, values in query
    ):
        return _refused(request, 400, "NUL characters (%00) are not accepted in the path or the query.", reason="nul")
    return None


def _refused(request: HttpRequest, status: int, detail: str, *, reason: str) -> JsonResponse:
    # A warning without a traceback: bad input is the caller's mistake, not an error of ours.
    log.warning("request_refused", path=request.path, status=status, reason=reason)
    return JsonResponse({"detail": detail}, status=status)


class ApiErrorMiddleware:
    """Refuses input no view can handle (oversized, NUL bytes) with a 4xx, and answers an exception
    that escaped a view as JSON 500 with the request id, never a traceback."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = _refusal(request)
        if refused is not None:
            return refused
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
        count_exception(request, exception)
        # A view that reads request.body itself (the Stripe webhook) meets the limit there.
        if isinstance(exception, RequestDataTooBig):
            return _refused(request, 413, payload_too_large_detail(), reason="body_too_large")
        if isinstance(exception, SuspiciousOperation):
            # Django answers these 400 too; its own handler would log them at error level.
            return _refused(request, 400, "Bad request.", reason=type(exception).__name__)
        if not request.path.startswith("/api/"):
            return None  # the admin and pages keep Django's own (DEBUG-aware) handling
        log.exception("unhandled_exception", path=request.path, error_type=type(exception).__name__)
        return JsonResponse(
            {"detail": "Internal server error.", "request_id": request_id_of(request)},
            status=500,
        )
