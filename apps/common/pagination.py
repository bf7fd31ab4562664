"""API.md's list shape: `?limit=` (default 50, max 200), an opaque `?cursor=`, and
`{"results": [...], "next_cursor": "..." | null}`. The cursor encodes the last sort key seen."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def page_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Must be an integer from 1 to {MAX_LIMIT}."]})
    return int(raw)


def decode_cursor(request: Request) -> str | None:
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    try:
        value = base64.b64decode(raw.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not value:
        raise ValidationError({"cursor": ["Malformed cursor; pass back next_cursor as it was given."]})
    return value


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def paginate_sorted(
    request: Request, items: Sequence[T], key: Callable[[T], str], render: Callable[[T], Any]
) -> dict[str, Any]:
    """Pages a list already sorted by `key` (for lists held in memory, such as mirrored prices)."""
    limit = page_limit(request)
    after = decode_cursor(request)
    remaining = [item for item in items if after is None or key(item) > after]
    page = remaining[:limit]
    next_cursor = encode_cursor(key(page[-1])) if len(remaining) > limit else None
    return {"results": [render(item) for item in page], "next_cursor": next_cursor}
