"""Responses: ``expand[]``, list pagination and ``created`` filters."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .errors import invalid
from .params import get_int, get_str
from .store import JsonObject, Order, Store

Where = Callable[[JsonObject], bool]

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


def _limit(params: dict[str, Any]) -> int:
    limit = get_int(params, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", "limit")
    return limit


def paginate(objects: list[JsonObject], params: dict[str, Any], url: str) -> JsonObject:
    """``objects`` newest first. Applies ``created``, ``limit``, ``starting_after``, ``ending_before``.
    For small lists (an invoice's lines, prices); the types that grow use ``list_page``."""
    limit = _limit(params)
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


def _bound(raw: Any, param: str) -> int:
    if not isinstance(raw, str):
        raise invalid("Invalid created filter", param)
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"Invalid integer: {raw}", param, code="parameter_invalid_integer") from None


def _created_range(order: Order, params: dict[str, Any]) -> tuple[int, int]:
    """The index range ``[lo, hi)`` of ``order`` that the ``created`` filter keeps."""
    lo, hi = 0, len(order.keys)
    if "created" not in params:
        return lo, hi
    condition = params["created"]
    if isinstance(condition, str):
        value = _bound(condition, "created")
        return order.created_at_least(value), order.created_at_least(value + 1)
    if not isinstance(condition, dict):
        raise invalid("Invalid created filter", "created")
    for op, raw in condition.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise invalid(f"Invalid created filter: {op}", f"created[{op}]")
        value = _bound(raw, f"created[{op}]")
        if op == "gt":
            lo = max(lo, order.created_at_least(value + 1))
        elif op == "gte":
            lo = max(lo, order.created_at_least(value))
        elif op == "lt":
            hi = min(hi, order.created_at_least(value))
        else:
            hi = min(hi, order.created_at_least(value + 1))
    return lo, hi


def _cursor(store: Store, object_type: str, params: dict[str, Any], name: str) -> int | None:
    object_id = get_str(params, name)
    if object_id is None:
        return None
    position = store.position(object_id, object_type)
    if position is None:
        raise invalid(f"No such object: '{object_id}'", name, code="resource_missing")
    return position


def list_page(
    store: Store, object_type: str, params: dict[str, Any], url: str, where: Where | None = None
) -> JsonObject:
    """One page of a stored type, newest first, as Stripe lists: ``created`` filters, ``limit``,
    ``starting_after`` / ``ending_before``, and ``where`` for the route's own filters.

    The ``created`` bounds and the cursor are found by bisection in the type's order, and the scan
    stops at ``limit + 1`` matches, so a page costs what it returns (plus the objects ``where``
    skips), not the size of the store. As at Stripe, a cursor is a position: it may name an
    object the filters leave out (a subscription canceled since the last page)."""
    limit = _limit(params)
    order = store.order(object_type)
    lo, hi = _created_range(order, params)
    after = _cursor(store, object_type, params, "starting_after")
    before = _cursor(store, object_type, params, "ending_before") if after is None else None
    if after is not None:
        indices = range(min(hi, after) - 1, lo - 1, -1)
    elif before is not None:
        indices = range(max(lo, before + 1), hi)  # upwards: the newer neighbours of the cursor
    else:
        indices = range(hi - 1, lo - 1, -1)
    objects = store.by_type.get(object_type, {})
    ids = order.ids
    page: list[JsonObject] = []
    for index in indices:
        obj = objects[ids[index]]
        if where is None or where(obj):
            page.append(obj)
            if len(page) > limit:
                break
    has_more = len(page) > limit
    del page[limit:]
    if before is not None:
        page.reverse()
    return {"object": "list", "data": page, "has_more": has_more, "url": url}
