"""What the webhook pipeline hands to domain code, and how handlers claim event types.

A handler runs in steps, so that no Stripe call is ever made inside a database transaction (a Stripe
stall would otherwise hold row locks, an open transaction and a worker for the whole retry budget):

- fetch(event) -> fetched: before the transaction. Reads what the event needs from Stripe, and
  plain (unlocked) reads of our rows to decide whether Stripe must be asked. Writes nothing.
- mirror(event, fetched), optional: after fetch, still outside any transaction of ours. dj-stripe's
  mirror of a fetched object, which may itself fetch related objects from Stripe. It only copies
  Stripe's current state, so it is safe to keep if what follows fails. Dry runs skip it.
- apply(event, fetched) -> Outcome: inside the transaction the pipeline opened, which also records
  the row's final status. Only writes, through the owning apps' services; never calls Stripe.

If apply finds under its locks that what fetch decided no longer holds (another worker applied a
same-second event meanwhile, so Stripe must now be asked), it raises FetchAgain: the transaction
rolls back and the pipeline runs fetch and apply again. A handler registered with `handles` has no
fetch step: it only writes. Raising anything else marks the event failed, records the error and
retries it. Types with no handler are stored and ignored.

The domain handlers are in apps/webhooks/handlers/ (one module per object family).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

OutcomeStatus = Literal["processed", "ignored"]
T = TypeVar("T")


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


class FetchAgain(Exception):  # an instruction to the pipeline rather than an error
    """Raised by an apply step: what its fetch step read changed before the apply locked it."""


Handler = Callable[[StripeEvent], Outcome]  # a one-step handler: writes only


@dataclass(frozen=True)
class Steps(Generic[T]):
    """A handler that reads from Stripe: fetch before the transaction, apply inside it."""

    fetch: Callable[[StripeEvent], T]
    apply: Callable[[StripeEvent, T], Outcome]
    mirror: Callable[[StripeEvent, T], None] | None = None


Registered = Handler | Steps[Any]
_HANDLERS: dict[str, Registered] = {}


def _register(event_types: tuple[str, ...], registered: Registered) -> None:
    for event_type in event_types:
        if event_type in _HANDLERS:
            raise RuntimeError(f"two handlers for {event_type}")
        _HANDLERS[event_type] = registered


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    """Registers a one-step handler: it writes, and asks Stripe nothing."""

    def register(handler: Handler) -> Handler:
        _register(event_types, handler)
        return handler

    return register


def handles_in_steps(
    *event_types: str,
    fetch: Callable[[StripeEvent], T],
    mirror: Callable[[StripeEvent, T], None] | None = None,
) -> Callable[[Callable[[StripeEvent, T], Outcome]], Callable[[StripeEvent, T], Outcome]]:
    """Registers the decorated function as the apply step of `fetch` (see the module docstring)."""

    def register(apply: Callable[[StripeEvent, T], Outcome]) -> Callable[[StripeEvent, T], Outcome]:
        _register(event_types, Steps(fetch=fetch, apply=apply, mirror=mirror))
        return apply

    return register


def handler_for(event_type: str) -> Registered | None:
    return _HANDLERS.get(event_type)
