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
