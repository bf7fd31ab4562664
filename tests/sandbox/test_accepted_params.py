"""Every parameter the sandbox accepts is one Stripe accepts for the pinned API version.

The source of truth is the official SDK: each ``*_service.py`` names, for every API method,
the HTTP method, the path and the params TypedDict; the TypedDicts list every accepted key.
Read here at test time, so nothing is copied and an SDK upgrade re-checks the list.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
import typing
from pathlib import Path
from typing import Any

import stripe
import typing_extensions
from stripe._request_options import RequestOptions

from stripe_sandbox.accepted import ACCEPTED, takes_expand

from .sdk_types import _module_namespace

SDK_ROOT = Path(stripe.__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{[^}]*\}")
# Routes Stripe still serves that the SDK no longer wraps, checked against the route that
# replaced them: a charge's refunds are ``GET /v1/refunds?charge=``.
LEGACY = {("GET", "/v1/charges/{}/refunds"): ("GET", "/v1/refunds")}


def _path_of(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _path_of(node.func.value)
    return None


@functools.cache
def sdk_routes() -> dict[tuple[str, str], type]:
    """(METHOD, /v1/path/{}) -> the params TypedDict, from every service of the SDK."""
    routes: dict[tuple[str, str], type] = {}
    for file in SDK_ROOT.rglob("_*_service.py"):
        module_name = ".".join(file.relative_to(SDK_ROOT.parent).with_suffix("").parts)
        importlib.import_module(module_name)
        namespace = _module_namespace(module_name)
        for func in ast.walk(ast.parse(file.read_text())):
            if not isinstance(func, ast.FunctionDef):
                continue
            params_arg = next((a for a in func.args.args if a.arg == "params"), None)
            if params_arg is None or params_arg.annotation is None:
                continue
            names = re.findall(r"\w+Params", ast.unparse(params_arg.annotation))
            calls = [
                c
                for c in ast.walk(func)
                if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "_request"
            ]
            if not names or not calls or len(calls[0].args) < 2:
                continue
            method, path = calls[0].args[0], _path_of(calls[0].args[1])
            if isinstance(method, ast.Constant) and path is not None and names[0] in namespace:
                routes[(str(method.value).upper(), _PLACEHOLDER.sub("{}", path))] = namespace[names[0]]
    return routes


def _forms(annotation: Any) -> list[Any]:
    """The alternatives of an annotation, without NotRequired/Optional/Union wrappers."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(typing, "NotRequired", None), getattr(typing, "Required", None)):
        return [form for arg in typing.get_args(annotation) for form in _forms(arg)]
    if type(annotation).__name__ == "UnionType":
        return [form for arg in typing.get_args(annotation) for form in _forms(arg)]
    return [annotation]


def _keys(typed_dict: type, prefix: str, depth: int = 0) -> set[str]:
    # The params inherit RequestOptions, whose annotations name classes of its own module.
    namespace = {**_module_namespace(RequestOptions.__module__), **_module_namespace(typed_dict.__module__)}
    hints = typing.get_type_hints(typed_dict, globalns=namespace)
    keys: set[str] = set()
    for name, annotation in hints.items():
        if name in RequestOptions.__annotations__:
            continue  # api_key, idempotency_key...: request options, not parameters
        key = f"{prefix}[{name}]" if prefix else name
        keys |= _keys_of(annotation, key, depth)
    return keys


def _keys_of(annotation: Any, key: str, depth: int) -> set[str]:
    keys: set[str] = set()
    for form in _forms(annotation):
        origin = typing.get_origin(form)
        if typing_extensions.is_typeddict(form):
            keys |= {key} | (_keys(form, key, depth + 1) if depth < 8 else set())
        elif origin in (list, typing.List):  # noqa: UP006 - what the SDK writes
            keys.add(f"{key}[]")
            keys |= _keys_of(typing.get_args(form)[0], f"{key}[]", depth + 1)
        elif origin in (dict, typing.Dict) or "UntypedStripeObject" in str(form):  # noqa: UP006
            keys.add(f"{key}[*]")
        else:
            keys.add(key)
    return keys


@functools.cache
def sdk_keys(method: str, path: str) -> frozenset[str]:
    method, path = LEGACY.get((method, path), (method, path))
    return frozenset(_keys(sdk_routes()[(method, path)], ""))


def test_every_sandbox_route_is_a_stripe_route() -> None:
    routes = sdk_routes()
    unknown = [
        route for route in ACCEPTED if (route[0], _PLACEHOLDER.sub("{}", route[1])) not in routes | LEGACY.keys()
    ]
    assert unknown == [], f"routes the SDK does not have: {unknown}"


def test_every_accepted_parameter_is_one_stripe_accepts() -> None:
    findings = []
    for (method, path), accepted in ACCEPTED.items():
        known = sdk_keys(method, _PLACEHOLDER.sub("{}", path))
        for key in (*accepted, *(("expand[]",) if takes_expand(method, path) else ())):
            if key not in known:
                findings.append(f"{method} {path}: {key}")
    assert findings == [], "parameters the sandbox accepts but Stripe does not:\n  " + "\n  ".join(findings)


def test_the_sdk_reading_finds_nested_parameters() -> None:
    # Guards the reader itself: a broken reader would make the test above pass vacuously.
    keys = sdk_keys("POST", "/v1/checkout/sessions")
    assert "line_items[][price_data][product_data][name]" in keys
    assert "metadata[*]" in keys
    assert "expand[]" in keys
    assert "colour" not in keys
