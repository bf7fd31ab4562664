"""Parsing untrusted JSON with limits: a bounded nesting depth and no non-standard constants.

Python's json module recurses once per level, so a body of a few thousand `[` raises RecursionError
(a 500) instead of a clear 400; and it accepts `NaN`/`Infinity`, which no JSON standard allows and
PostgreSQL's jsonb refuses to store. Both are refused here with a message a caller can act on.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 100


class JsonRejected(ValueError):
    """The text is not JSON we accept; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise JsonRejected(f"`{name}` is not valid JSON.")


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than `limit`; a linear scan, no recursion."""
    if text.count("[") + text.count("{") <= limit:
        return False  # nesting can never exceed the number of opening brackets (C-speed counts)
    depth = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def json_loads_bounded(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads, refusing nesting deeper than `max_depth` and NaN/Infinity (JsonRejected)."""
    if json_depth_exceeds(text, max_depth):
        raise JsonRejected(f"JSON nested deeper than {max_depth} levels is not accepted.")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except JsonRejected:
        raise
    except ValueError as exc:
        raise JsonRejected(f"The body is not valid JSON: {exc}") from exc


def unstorable_text(value: Any) -> str | None:
    """What in parsed JSON PostgreSQL could never store: "nul", "surrogate", or None.

    Its text and jsonb types refuse NUL characters and lone UTF-16 surrogates, both legal as JSON
    escapes (`\\u0000`, `\\ud800`); reaching the database they are an error, not a clear 4xx.
    Iterative, so a deep value costs no recursion.
    """
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "nul"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "surrogate"
    return None
