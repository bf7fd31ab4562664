"""Stripe's form encoding: ``items[0][price]=x``, ``metadata[k]=v``, ``expand[]=a``.

Parsed into nested dicts and lists; every leaf stays a string and handlers convert it with
the typed getters below so a bad value becomes Stripe's 400 with the right ``param``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import invalid

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not rest:
        return [head]
    return [head, *_KEY_PART.findall("[" + rest)]


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all indices into lists, ordered by index."""
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split_key(key)
        node = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if part == "":
                # ``expand[]=a&expand[]=b``: the next free index.
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    result = _listify(root)
    assert isinstance(result, dict)
    return result


# ``param``: the full form key an error names when ``params`` is a nested object
# (``line_items[0][price_data]``'s ``currency`` is ``line_items[0][price_data][currency]``).


def get_str(params: dict[str, Any], name: str, *, required: bool = False, param: str | None = None) -> str | None:
    from .errors import missing_param

    param = param or name
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_param(param)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {param}", param)
    return value


def get_int(
    params: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    minimum: int | None = None,
    param: str | None = None,
) -> int | None:
    param = param or name
    raw = get_str(params, name, required=required, param=param)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"Invalid integer: {raw}", param, code="parameter_invalid_integer") from None
    if minimum is not None and value < minimum:
        raise invalid(f"Invalid {name}: must be at least {minimum}", param)
    return value


def get_bool(params: dict[str, Any], name: str, *, param: str | None = None) -> bool | None:
    param = param or name
    raw = get_str(params, name, param=param)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise invalid(f"Invalid boolean: {raw}", param)
    return raw == "true"


def get_dict(params: dict[str, Any], name: str, *, param: str | None = None) -> dict[str, Any]:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {param or name}", param or name)
    return value


def get_list(params: dict[str, Any], name: str) -> list[Any]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        # A sparse list (``items[1][...]`` only) arrives as a dict with digit keys.
        return [value[k] for k in sorted(value, key=lambda k: int(k) if k.isdigit() else 0)]
    if isinstance(value, list):
        return value
    return [value]


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe semantics: keys merge, an empty value deletes a key, ``metadata=""`` clears all."""
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise invalid("Invalid metadata: must be a hash", param)
    merged = dict(current)
    for key, value in update.items():
        if not isinstance(value, str):
            raise invalid(f"Invalid metadata value for {key}", f"{param}[{key}]")
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
