"""Small pieces shared by many objects."""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]


def nulls(names: str) -> JsonObject:
    """``nulls("a b")`` -> ``{"a": None, "b": None}``: keeps long null-field lists readable."""
    return dict.fromkeys(names.split())


def address() -> JsonObject:
    return nulls("city country line1 line2 postal_code state")


def list_object(url: str, data: list[JsonObject] | None = None) -> JsonObject:
    return {"object": "list", "data": data or [], "has_more": False, "url": url}


def billing_details(email: str | None = None, name: str | None = None) -> JsonObject:
    return {"address": address(), "email": email, "name": name, "phone": None, "tax_id": None}


def automatic_tax_off() -> JsonObject:
    return {"enabled": False, "liability": None, "disabled_reason": None}
