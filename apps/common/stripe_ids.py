"""Reading ids out of Stripe objects we hold as plain dicts (event snapshots, list pages)."""

from __future__ import annotations

from typing import Any


def stripe_id(value: Any) -> str:
    """An expandable field: an id string, or the expanded object (its `id`); "" when absent."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")
