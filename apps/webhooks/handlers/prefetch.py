"""What a batch of events (apps/webhooks/batches.py) reads and locks once for all its events.

One at a time, each subscription event (and each invoice of a subscription) reads its subscription's
last applied event in its fetch step, then locks the subscription's row in its apply step, and each
purchase looks its price's feature up. In a batch those are one statement each for the whole batch:

- batch_reads, around the fetch steps (no transaction open): the last applied event of every
  subscription the batch's events decide on, read at once. The fetch steps all run before any apply,
  so this is the state each of them would have read.
- batch_writes, inside the batch's transaction around the apply steps: the rows of the subscriptions
  the batch writes, locked at once (in primary key order) and kept as the transaction writes them;
  the price -> feature map of each project, read once.
- batch_event_rolled_back: an event's savepoint rolled back, so the kept rows are read again.

Decisions are still made again under the lock by each apply, and every effect is the same as one
event at a time; only the number of round trips changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from apps.entitlements import services
from apps.webhooks.handlers.invoices import subscription_paid_by
from apps.webhooks.handlers.subscriptions import subscription_of
from apps.webhooks.registry import StripeEvent


@contextmanager
def batch_reads(events: Iterable[StripeEvent]) -> Iterator[None]:
    ids = {subscription_of(event) or subscription_paid_by(event) for event in events} - {""}
    with services.subscription_decisions_prefetched(ids):
        yield


@contextmanager
def batch_writes(events: Iterable[StripeEvent]) -> Iterator[None]:
    ids = {subscription_of(event) for event in events} - {""}
    with services.subscription_rows_locked(ids), services.price_features_memoized():
        yield


def batch_event_rolled_back() -> None:
    services.subscription_rows_forget()
