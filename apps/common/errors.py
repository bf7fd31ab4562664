"""The API's error envelope.

DRF already answers its own exceptions in the shapes API.md names ({"detail": ...} or field
errors). Anything else is an unexpected bug: ApiErrorMiddleware answers it as a JSON 500 with the
request id, so no traceback ever leaks to a caller.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def payload_too_large_detail() -> str:
    """Names the limit (DATA_UPLOAD_MAX_MEMORY_SIZE), so that a caller knows what to send instead."""
    return f"The request body exceeds the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    # Exceptions may carry fields of their own, such as StripeUnavailable's stripe_request_id.
    extra = getattr(exc, "response_extra", None)
    if response is not None and isinstance(extra, dict) and isinstance(response.data, dict):
        response.data.update(extra)
    return response
