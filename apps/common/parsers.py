"""The JSON parser of every DRF view: bounded size and depth, standard JSON only, no NUL characters.

DRF's JSONParser reads the whole stream (Django's DATA_UPLOAD_MAX_MEMORY_SIZE only guards
`request.body`, which DRF bypasses), recurses once per nesting level (a few thousand `[` raise
RecursionError, a 500), and lets `\\u0000` through to PostgreSQL, whose text and jsonb columns refuse
it (a DataError, a 500). Each of these is a 4xx here, before any view sees the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from apps.common.errors import PayloadTooLarge, payload_too_large_detail
from apps.common.json_limits import JsonRejected, json_loads_bounded, unstorable_text

NUL_REFUSED = "NUL characters (\\u0000) are not accepted."
SURROGATE_REFUSED = "Lone UTF-16 surrogate escapes (such as \\ud800) are not accepted."


class BoundedJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any] | None, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        if stream is None:
            return None
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # One byte past the limit tells an oversized body without reading all of it.
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(payload_too_large_detail())
        try:
            data = json_loads_bounded(raw.decode(encoding))
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not {encoding}: {exc.reason}.") from None
        except JsonRejected as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        unstorable = unstorable_text(data)
        if unstorable == "nul":
            raise ParseError(NUL_REFUSED)
        if unstorable == "surrogate":
            raise ParseError(SURROGATE_REFUSED)
        return data
