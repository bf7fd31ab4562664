"""The one paginator of every list (API.md's "Lists").

`?limit=` is 1 to 200 (default 50), `?cursor=` is opaque, and a page is
`{"results": [...], "next_cursor": "..." | null}`. `ListCursorPagination` is DRF's
`CursorPagination` (keyset paging on a unique ordering, with DRF's offset logic for ties) with the
contract's names, one strict codec and one wording for each error:

    ?limit=0, 201, abc, (empty)      → 400 {"limit": ["Must be an integer from 1 to 200."]}
    ?cursor=zzz, (empty), forged     → 400 {"cursor": ["Malformed cursor; pass back next_cursor as it was given."]}

A cursor is the URL-safe base64 (unpadded) of DRF's cursor query string (`p=<position>`, plus `o=`
for an offset past tied positions). Only what this class hands out decodes: anything else, an empty
value, a reverse cursor (there are no previous links) or a position that the ordering field cannot
hold is a 400, never a first page or a 500.

Lists held in memory are not paged here: page the queryset they are built from, then render the
page (the catalog's prices do so), so that the filter and the order are the database's both.

    paginator = ListCursorPagination(ordering="id")
    page = paginator.paginate_queryset(queryset, request, view=self)
    return paginator.get_paginated_response(OutputSerializer(page, many=True).data)
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, cast
from urllib import parse

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
LIMIT_ERROR = f"Must be an integer from 1 to {MAX_LIMIT}."
CURSOR_ERROR = "Malformed cursor; pass back next_cursor as it was given."
# The 400 of a list operation, for its schema.
BAD_PAGE_QUERY = (
    f'A bad `limit` ("{LIMIT_ERROR}") or `cursor` ("{CURSOR_ERROR}"), or a NUL byte in the path or the query.'
)
_MAX_POSITION = 1000  # characters; every sort key we page on is far shorter


class ListCursorPagination(CursorPagination):
    page_size = DEFAULT_LIMIT
    max_page_size = MAX_LIMIT
    page_size_query_param = "limit"
    cursor_query_param = "cursor"
    invalid_cursor_message = CURSOR_ERROR
    ordering: str | list[str] | tuple[str, ...] = "id"
    template = None  # no browsable-API page controls

    def __init__(self, ordering: str | tuple[str, ...] | None = None) -> None:
        """`ordering` is a unique (or nearly unique) field, `-` for descending; cursors hold its value.
        Fields after the first only fix the order among ties (which the cursor skips by offset)."""
        if ordering is not None:
            self.ordering = ordering
        self._model: type[Model] | None = None

    # --- the contract's query parameters ------------------------------------------------------

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param or "limit")
        if raw is None:
            return DEFAULT_LIMIT
        # ASCII digits only, and few of them: int() of 5000 digits raises (and "²".isdigit() is true).
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= MAX_LIMIT:
            raise ValidationError({"limit": [LIMIT_ERROR]})
        return int(raw)

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: APIView | None = None) -> list[Any]:
        """The page's items; `ordering` must be unique (or nearly) for the keyset to hold."""
        self._model = queryset.model
        page = super().paginate_queryset(queryset, request, view)
        return list(page or [])

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        cursor = self._cursor_of(encoded)
        if cursor is None or self._encode(cursor) != encoded or not self._position_fits(cursor):
            raise ValidationError({self.cursor_query_param: [CURSOR_ERROR]})
        return cursor

    def encode_cursor(self, cursor: Cursor) -> str:
        # The token alone, not DRF's URL: the contract's next_cursor is passed back as `?cursor=`.
        return self._encode(cursor)

    # --- the answer ---------------------------------------------------------------------------

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next_cursor": self.get_next_link()})

    # --- the codec ----------------------------------------------------------------------------

    @classmethod
    def cursor_after(cls, position: str) -> str:
        """The cursor of the page after the item whose sort key is `position` (for tests and tools)."""
        return cls._encode(Cursor(offset=0, reverse=False, position=position))  # type: ignore[arg-type]

    @staticmethod
    def _encode(cursor: Cursor) -> str:
        tokens: dict[str, str] = {}
        if cursor.offset != 0:
            tokens["o"] = str(cursor.offset)
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = str(cursor.position)
        querystring = parse.urlencode(tokens)
        return base64.urlsafe_b64encode(querystring.encode("ascii")).decode("ascii").rstrip("=")

    def _cursor_of(self, encoded: str) -> Cursor | None:
        """The cursor a token names, or None for a token that is not one (`?cursor=` included)."""
        try:
            padded = encoded.encode("ascii") + b"=" * (-len(encoded) % 4)
            querystring = base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
            tokens = parse.parse_qs(querystring, keep_blank_values=True, strict_parsing=True)
        except (binascii.Error, UnicodeError, ValueError):
            return None
        if set(tokens) - {"o", "p"} or any(len(values) != 1 for values in tokens.values()):
            return None  # no reverse cursors: the contract has no previous page
        offset_text = tokens.get("o", ["0"])[0]
        position = tokens.get("p", [None])[0]
        if not (offset_text.isascii() and offset_text.isdigit() and len(offset_text) <= 4):
            return None
        offset = int(offset_text)
        if offset > self.offset_cutoff or (position is None and offset == 0):
            return None  # the first page has no cursor
        if position is not None and (
            not position or len(position) > _MAX_POSITION or any(ord(c) < 32 for c in position)
        ):
            return None
        return Cursor(offset=offset, reverse=False, position=cast(Any, position))

    def _position_fits(self, cursor: Cursor) -> bool:
        """Whether the ordering field can hold the cursor's position (a forged `p=abc` for an id is
        a 400 here rather than an error of the database)."""
        if cursor.position is None or self._model is None:
            return True
        name = str(self.ordering if isinstance(self.ordering, str) else self.ordering[0]).lstrip("-")
        try:
            field = self._model._meta.pk if name == "pk" else self._model._meta.get_field(name)
            field.get_prep_value(field.to_python(cursor.position))  # type: ignore[union-attr]
        except (FieldDoesNotExist, DjangoValidationError, TypeError, ValueError):
            return False
        return True
