"""The comparers a run goes through, in order (see base.py for what each one does).

Customers come first: their links route every other object, and a link finance fixes is what the
later comparers route by. Payment intents come before charges, so that a payment's ledger row is
recorded before any refund of it.
"""

from __future__ import annotations

from apps.reconciliation.comparers.base import Comparer
from apps.reconciliation.comparers.customers import CustomerComparer
from apps.reconciliation.comparers.payments import ChargeComparer, PaymentIntentComparer
from apps.reconciliation.comparers.subscriptions import SubscriptionComparer

COMPARERS: list[Comparer] = [CustomerComparer(), SubscriptionComparer(), PaymentIntentComparer(), ChargeComparer()]


def comparer_for(object_type: str) -> Comparer:
    """The comparer of a Stripe object type (a discrepancy's object_type); KeyError for an unknown one."""
    for comparer in COMPARERS:
        if comparer.object_type == object_type:
            return comparer
    raise KeyError(object_type)


__all__ = ["COMPARERS", "comparer_for"]
