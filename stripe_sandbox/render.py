"""Responses: ``expand[]``, list pagination and ``created`` filters."""

from __future__ import annotations

import copy
from typing import Any

from .errors import invalid
from .params import get_int, get_str
from .store import JsonObject, Store

MAX_EXPAND_DEPTH = 4


def expand(store: Store, obj: JsonObject, paths: list[str]) -> JsonObject:
    if not paths:
        return obj
    result = copy.deepcopy(obj)
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_EXPAND_DEPTH:
            raise invalid(f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property.", "expand")
        _expand_node(store, result, parts)
    return result


def _expand_node(store: Store, node: Any, parts: list[str]) -> Any:
    if not parts:
        return node
    if isinstance(node, list):
        return [_expand_node(store, child, parts) for child in node]
    if not isinstance(node, dict):
        return node
    head, rest = parts[0], parts[1:]
    if head == "line_items" and node.get("object") == "checkout.session":
        items = store.meta(node["id"]).get("line_items", [])
        node[head] = {
            "object": "list",
            "data": copy.deepcopy(items),
            "has_more": False,
            "url": f"/v1/checkout/sessions/{node['id']}/line_items",
        }
    elif head not in node:
        return node
    value = node[head]
    if isinstance(value, str):
        target = store.get(value)
        if target is not None:
            value = copy.deepcopy(target)
    node[head] = _expand_node(store, value, rest)
    return node


def _created_matches(created: int, condition: Any) -> bool:
    if isinstance(condition, str):
        return created == int(condition)
    if isinstance(condition, dict):
        checks = {
            "gt": lambda v: created > v,
            "gte": lambda v: created >= v,
            "lt": lambda v: created < v,
            "lte": lambda v: created <= v,
        }
        for op, raw in condition.items():
            if op not in checks:
                raise invalid(f"Invalid created filter: {op}", f"created[{op}]")
            try:
                bound = int(raw)
            except (TypeError, ValueError):
                raise invalid(f"Invalid integer: {raw}", f"created[{op}]") from None
            if not checks[op](bound):
                return False
    return True


def paginate(objects: list[JsonObject], params: dict[str, Any], url: str) -> JsonObject:
    """``objects`` newest first. Applies ``created``, ``limit``, ``starting_after``, ``ending_before``."""
    limit = get_int(params, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", "limit")
    if "created" in params:
        try:
            objects = [obj for obj in objects if _created_matches(obj["created"], params["created"])]
        except ValueError:
            raise invalid("Invalid created filter", "created") from None
    starting_after = get_str(params, "starting_after")
    ending_before = get_str(params, "ending_before")
    ids = [obj["id"] for obj in objects]
    if starting_after is not None:
        if starting_after not in ids:
            raise invalid(f"No such object: '{starting_after}'", "starting_after", code="resource_missing")
        start = ids.index(starting_after) + 1
        page = objects[start : start + limit]
        has_more = start + limit < len(objects)
    elif ending_before is not None:
        if ending_before not in ids:
            raise invalid(f"No such object: '{ending_before}'", "ending_before", code="resource_missing")
        end = ids.index(ending_before)
        page = objects[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        page = objects[:limit]
        has_more = len(objects) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}
