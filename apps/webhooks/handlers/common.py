"""Small helpers the handler modules share."""

from __future__ import annotations

import datetime as dt
from typing import Any

from apps.webhooks.registry import Outcome, StripeEvent


def event_time(event: StripeEvent) -> dt.datetime:
    return dt.datetime.fromtimestamp(event.created, tz=dt.UTC)


def stripe_id(value: Any) -> str:
    """An expandable field: an id string, or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def unrouted(event: StripeEvent) -> Outcome:
    return Outcome("ignored", note=f"{event.type}: the object belongs to no known project")
