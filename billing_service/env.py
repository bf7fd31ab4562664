"""Typed readers for environment variables.

Each helper raises ImproperlyConfigured on a malformed value instead of guessing:
a typo in production config must stop the process at start, not silently fall back.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None else value


def env_required(name: str) -> str:
    value = _raw(name)
    if value is None:
        raise ImproperlyConfigured(f"{name} must be set")
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use one of: 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    """For timeouts in seconds only; money never goes through here."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name)
    if value is None:
        return default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def env_url(name: str, schemes: tuple[str, ...]) -> str | None:
    value = _raw(name)
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ImproperlyConfigured(f"{name} must use one of the schemes {', '.join(schemes)}; got {parsed.scheme!r}")
    return value


def env_json_object(name: str) -> dict[str, str]:
    """A JSON object of strings, such as {"demo": "sk_test_..."}; empty when unset."""
    value = _raw(name)
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc.msg}") from None
    if not isinstance(parsed, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()):
        raise ImproperlyConfigured(f"{name} must be a JSON object of strings")
    return parsed


def env_choice_aliased(name: str, alias: str, default: str, choices: tuple[str, ...]) -> str:
    """env_choice for a variable also accepted under a second name (the seed documents' name).

    Both set to different values is an error rather than a silent precedence rule: one of them is
    stale, and which one the operator meant is not ours to guess.
    """
    value, alias_value = _raw(name), _raw(alias)
    if value is not None and alias_value is not None and value != alias_value:
        raise ImproperlyConfigured(f"{name}={value!r} and its alias {alias}={alias_value!r} disagree; set only one")
    return env_choice(name if value is not None else alias, default, choices)


def env_secrets(list_name: str, single_name: str) -> list[str]:
    """A rotation list of secrets plus a single one under its own name, merged.

    The single one comes first, then the list's, each kept once in the order given. A comma in the
    single one means a list was put in the wrong variable: refused, not split.
    """
    single = _raw(single_name)
    if single is not None and "," in single:
        raise ImproperlyConfigured(f"{single_name} holds one secret; put a comma-separated list in {list_name}")
    merged = ([single] if single else []) + env_list(list_name, [])
    return list(dict.fromkeys(merged))
