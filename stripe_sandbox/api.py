"""Route registry for the ``/v1`` API: handlers are synchronous functions of the state, so a
write is atomic on the single event loop (nothing else runs until it returns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .params import get_bool, get_str
from .sandbox import Sandbox
from .store import JsonObject


@dataclass
class ApiRequest:
    method: str
    path: str
    params: dict[str, Any]
    match: dict[str, str]

    def arg(self, name: str) -> str:
        return self.match[name]


ApiHandler = Callable[[Sandbox, ApiRequest], JsonObject]
ROUTES: list[tuple[str, str, ApiHandler]] = []


def route(method: str, path: str) -> Callable[[ApiHandler], ApiHandler]:
    def register(handler: ApiHandler) -> ApiHandler:
        ROUTES.append((method, path, handler))
        return handler

    return register


def filter_equal(objects: list[JsonObject], params: dict[str, Any], names: list[str]) -> list[JsonObject]:
    """Keep objects whose field equals each given list filter (``customer=cus_x``, ``active=true``)."""
    for name in names:
        if name not in params:
            continue
        if name in ("active", "shippable"):
            flag = get_bool(params, name)
            objects = [obj for obj in objects if obj.get(name) is flag]
        else:
            value = get_str(params, name)
            objects = [obj for obj in objects if obj.get(name) == value]
    return objects


def live(objects: list[JsonObject]) -> list[JsonObject]:
    return [obj for obj in objects if not obj.get("deleted")]


def matching(
    params: dict[str, Any], names: list[str], *extra: Callable[[JsonObject], bool]
) -> Callable[[JsonObject], bool] | None:
    """``filter_equal`` as one predicate for ``render.list_page``: the values are read (and a bad
    one refused) before any object is looked at. ``extra`` predicates must hold too."""
    wanted: dict[str, object] = {}
    for name in names:
        if name in params:
            wanted[name] = get_bool(params, name) if name in ("active", "shippable") else get_str(params, name)
    checks = list(extra)
    if not wanted and not checks:
        return None
    pairs = list(wanted.items())

    def where(obj: JsonObject) -> bool:
        for name, value in pairs:
            if obj.get(name) != value:
                return False
        return all(check(obj) for check in checks)

    return where


def is_live(obj: JsonObject) -> bool:
    return not obj.get("deleted")
