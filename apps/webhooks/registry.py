"""What the webhook pipeline hands to domain code, and how domain code claims event types.

Handlers live in apps/webhooks/handlers.py (the domain effects). A handler gets a StripeEvent, does
its writes (inside the transaction the pipeline opened) and returns an Outcome; raising marks the
event failed, records the error and retries it. Types with no handler are stored and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

OutcomeStatus = Literal["processed", "ignored"]


@dataclass(frozen=True)
class StripeEvent:
    ledger_id: int
    id: str
    type: str
    created: int  # Unix seconds, Stripe's event.created
    livemode: bool
    api_version: str | None
    data_object: dict[str, Any]
    previous_attributes: dict[str, Any] | None


@dataclass
class Outcome:
    status: OutcomeStatus
    project_id: int | None = None  # the project the event was routed to, when known
    changes: list[str] = field(default_factory=list)  # human-readable; what a dry-run replay reports
    note: str = ""  # why it was ignored or skipped (e.g. "stale: newer state already applied")


Handler = Callable[[StripeEvent], Outcome]
_HANDLERS: dict[str, Handler] = {}


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for event_type in event_types:
            if event_type in _HANDLERS:
                raise RuntimeError(f"two handlers for {event_type}")
            _HANDLERS[event_type] = handler
        return handler

    return register


def handler_for(event_type: str) -> Handler | None:
    return _HANDLERS.get(event_type)
