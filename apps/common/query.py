"""Query parameters, parsed the one way: a DRF serializer per view, validated by `validated_query`.

A view declares its query as a serializer of the fields below (nested in the view, as its input and
output serializers are) and names it in `extend_schema(parameters=[...])`, so that the schema's
constraints are the ones the server enforces. A bad value is a 400 naming each bad parameter in
DRF's field-error shape.

- Values are strings on the wire: `strict_json_types` (apps/common/strict.py) is never applied here.
- `?name=` (present but empty) is a value, not an absence: a required text or an instant refuses it,
  as they always did. (DRF reads an empty form value of an optional field as absent, so the
  serializer gets a plain dict, not the QueryDict; a repeated parameter counts with its last value,
  as `request.query_params[name]` does.)
- `limit` and `cursor` belong to the paginator (apps/common/pagination.py), not to these serializers.
- The entitlement check (the hot path) parses its two parameters by hand with `text_param`, which
  answers with the same wording as `QueryTextField`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

INSTANT_ERROR = "An ISO 8601 instant with a time zone, such as 2026-01-01T00:00:00Z."
# RFC 3339, as the schema's `format: date-time` says: Python's ISO parser also takes week dates,
# basic formats and a missing offset, which a caller of the schema would not expect to work.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def text_error(max_length: int) -> str:
    return f"Required, at most {max_length} characters."


class QueryTextField(serializers.CharField):
    """A non-empty string of at most `max_length` characters, taken as sent (not trimmed)."""

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        message = text_error(max_length)
        codes = ("required", "blank", "null", "max_length", "min_length", "invalid")
        errors: dict[str, Any] = dict.fromkeys(codes, message)
        super().__init__(max_length=max_length, min_length=1, trim_whitespace=False, error_messages=errors, **kwargs)


def instant_text(value: dt.datetime) -> str:
    """An instant as the API writes it: ISO 8601 in UTC with a `Z` (API.md's conventions)."""
    return value.isoformat().replace("+00:00", "Z")


@extend_schema_field({"type": "string", "format": "date-time"})
class InstantField(serializers.Field[dt.datetime, str, str, Any]):
    """An RFC 3339 instant with an offset (`2026-01-01T00:00:00Z`, `...+01:00`), converted to UTC."""

    default_error_messages = {
        "invalid": INSTANT_ERROR,
        "required": INSTANT_ERROR,
        "null": INSTANT_ERROR,
        # In a JSON body (invoices' due_at) a number or object is a type error, worded as strict.py's.
        "type": "Not a valid string.",
    }

    def to_internal_value(self, data: Any) -> dt.datetime:
        if not isinstance(data, str):
            self.fail("type")
        instant = None
        if isinstance(data, str) and _RFC3339.fullmatch(data):
            try:
                # ValueError for a well-formed but impossible instant (month 13); in UTC, because
                # PostgreSQL refuses offsets beyond ±15:59 (OverflowError at the ends of the calendar).
                parsed = parse_datetime(data.upper())
                instant = parsed.astimezone(dt.UTC) if parsed and parsed.tzinfo else None
            except (ValueError, OverflowError):
                instant = None
        if instant is None:
            self.fail("invalid")
        return instant

    def to_representation(self, value: dt.datetime) -> str:
        return instant_text(value)


def validated_query(request: Request, serializer_class: type[serializers.Serializer[Any]]) -> dict[str, Any]:
    """The query parameters validated by `serializer_class`; a 400 naming every bad one."""
    query = serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def text_param(request: Request, name: str, *, max_length: int) -> str:
    """One required text parameter, parsed by hand for the hot path (as `QueryTextField` would)."""
    value = request.query_params.get(name, "")
    if not value or len(value) > max_length:
        raise ValidationError({name: [text_error(max_length)]})
    return value
