"""The errors services raise: plain Python, so that the admin, commands and tasks catch them without
importing the web framework.

- Invalid input is Django's `ValidationError` with a dict of field -> messages (or
  `NestedValidationError` when the errors nest under list items).
- Anything else a caller can act on is a `ServiceError`: `NotFound`, `Conflict`, and the Stripe
  gateway's errors (apps/common/stripe_gateway/errors.py).

`apps/common/errors.py:api_exception_handler` answers each of them once, in DRF's shapes:
`{"field": ["message"]}` for invalid input, `{"detail": "..."}` (plus `response_extra`) otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.core.exceptions import ValidationError


class ServiceError(Exception):
    """A refusal the caller can act on; the API answers `status_code` with `{"detail": detail}`."""

    status_code: ClassVar[int] = 400
    default_detail: ClassVar[str] = "The request was refused."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        # str(exc) is the detail, as it was for DRF's exceptions (stored as a row's last_error).
        super().__init__(self.detail)

    @property
    def response_extra(self) -> dict[str, Any]:
        """Fields the API adds to the body next to `detail`."""
        return {}


class NotFound(ServiceError):
    status_code = 404
    default_detail = "Not found."


class Conflict(ServiceError):
    status_code = 409
    default_detail = "The request conflicts with the current state."


class NestedValidationError(ValidationError):
    """Invalid input whose errors nest: a list's items keyed by their index, as DRF reports them.

    Django's ValidationError cannot hold a dict inside a dict, so `detail` keeps the nested errors for
    the API, while Django's own readers (forms, the admin, `message_dict`) get them flattened per
    top-level field as "path: message", e.g. {"option_groups": ["0.id: 7 is not an item ..."]}.
    """

    def __init__(self, detail: Mapping[str, Any]) -> None:
        self.detail: dict[str, Any] = dict(detail)
        super().__init__({str(field): _flattened(errors) for field, errors in self.detail.items()})


def validation_detail(exc: ValidationError) -> Any:
    """The body the API answers for `exc`: `{"field": ["message"]}`, or `["message"]` without fields."""
    if isinstance(exc, NestedValidationError):
        return exc.detail
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return exc.messages


def _flattened(errors: Any, path: str = "") -> list[str]:
    if isinstance(errors, Mapping):
        return [message for key, value in errors.items() for message in _flattened(value, f"{path}{key}.")]
    if isinstance(errors, list | tuple):
        return [message for value in errors for message in _flattened(value, path)]
    prefix = f"{path[:-1]}: " if path else ""
    return [f"{prefix}{errors}"]
