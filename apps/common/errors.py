"""The API's error envelope.

DRF already answers its own exceptions in the shapes API.md names ({"detail": ...} or field
errors). The services raise plain errors instead (apps/common/exceptions.py: Django's
ValidationError, NotFound, Conflict, the Stripe gateway's errors), so that the admin and commands
catch them without DRF; `api_exception_handler` maps them here, once, to the same shapes. Anything
else is an unexpected bug: ApiErrorMiddleware answers it as a JSON 500 with the request id, so no
traceback ever leaks to a caller.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from apps.common.exceptions import ServiceError, validation_detail


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def payload_too_large_detail() -> str:
    """Names the limit (DATA_UPLOAD_MAX_MEMORY_SIZE), so that a caller knows what to send instead."""
    return f"The request body exceeds the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."


def _service_error_as_drf(exc: ServiceError) -> exceptions.APIException:
    api_exc = exceptions.APIException(detail=exc.detail)
    api_exc.status_code = exc.status_code
    return api_exc


def _validation_as_drf(exc: DjangoValidationError) -> exceptions.ValidationError:
    detail = validation_detail(exc)
    if isinstance(detail, dict) and NON_FIELD_ERRORS in detail:
        # A model's clean() or constraint names no field: say so as DRF's serializers do.
        detail = {api_settings.NON_FIELD_ERRORS_KEY if k == NON_FIELD_ERRORS else k: v for k, v in detail.items()}
    return exceptions.ValidationError(detail)


def _as_drf(exc: Exception) -> Exception:
    """The DRF exception that answers `exc` as it was answered before the services stopped using DRF."""
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        return _validation_as_drf(exc)
    if isinstance(exc, ServiceError):
        return _service_error_as_drf(exc)
    return exc


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Through DRF's handler, so that what it does for its own exceptions (headers, marking an
    # enclosing atomic block for rollback) is done for ours too.
    response = exception_handler(_as_drf(exc), context)
    # Exceptions may carry fields of their own, such as StripeUnavailable's stripe_request_id.
    extra = getattr(exc, "response_extra", None)
    if response is not None and isinstance(extra, dict) and isinstance(response.data, dict):
        response.data.update(extra)
    return response
