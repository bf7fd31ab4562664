"""Small helpers the handler modules share."""

from __future__ import annotations

import datetime as dt

from apps.webhooks.registry import Outcome, StripeEvent


def event_time(event: StripeEvent) -> dt.datetime:
    return dt.datetime.fromtimestamp(event.created, tz=dt.UTC)


def unrouted(event: StripeEvent) -> Outcome:
    return Outcome("ignored", note=f"{event.type}: the object belongs to no known project")
