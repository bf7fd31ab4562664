"""invoice.paid, .payment_succeeded, .payment_failed: a subscription we never heard of is fetched
from Stripe (before the transaction) and applied; a paid one-off invoice records its priced lines as
purchases (apps/entitlements)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.common.stripe_ids import stripe_id
from apps.entitlements import services
from apps.entitlements.projection import entitlements_recompute_later
from apps.webhooks.handlers.common import event_time, unrouted
from apps.webhooks.handlers.subscriptions import subscription_apply, subscription_retrieve
from apps.webhooks.registry import Outcome, StripeEvent, handles_in_steps
from apps.webhooks.routing import Route, route_object


@dataclass(frozen=True)
class InvoiceFetched:
    route: Route | None
    subscription: dict[str, Any] | None  # Stripe's current object of a subscription we did not know


def _subscription_id(invoice: dict[str, Any]) -> str:
    details = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    return stripe_id(details or invoice.get("subscription"))


INVOICE_PAYMENT_EVENTS = ("invoice.payment_succeeded", "invoice.paid", "invoice.payment_failed")


def subscription_paid_by(event: StripeEvent) -> str:
    """The subscription an invoice payment event is about; "" for a one-off invoice, another event, or
    a payload of the wrong shape (which the event's own fetch step reports)."""
    if event.type not in INVOICE_PAYMENT_EVENTS:
        return ""
    try:
        return _subscription_id(event.data_object)
    except (AttributeError, TypeError):  # `parent` or its details not objects: a hand-made event
        return ""


def _fetch(event: StripeEvent) -> InvoiceFetched:
    invoice = event.data_object
    route = route_object(invoice)
    if route is None:
        return InvoiceFetched(None, None)
    subscription_id = _subscription_id(invoice)
    unknown = bool(subscription_id) and (
        services.subscription_event_decide(
            subscription_id=subscription_id, event_created=event.created, event_id=event.id
        )
        == "new"
    )
    if not unknown:
        return InvoiceFetched(route, None)
    return InvoiceFetched(route, subscription_retrieve(route, subscription_id))


@handles_in_steps(*INVOICE_PAYMENT_EVENTS, fetch=_fetch)
def invoice_payment(event: StripeEvent, fetched: InvoiceFetched) -> Outcome:
    route = fetched.route
    if route is None:
        return unrouted(event)
    invoice = event.data_object
    changes: list[str] = []
    if fetched.subscription is not None:
        # Stripe's current object, so it wins any tie (and a newer event applied meanwhile still wins).
        changes += subscription_apply(route, fetched.subscription, event, current=True).changes
    if not _subscription_id(invoice) and event.type != "invoice.payment_failed" and invoice.get("status") == "paid":
        # A one-off invoice: each priced line is a one-time purchase.
        purchases = services.invoice_purchases_record(
            project=route.project, user_id=route.user_id, invoice=invoice, paid_at=event_time(event)
        )
        if purchases:
            entitlements_recompute_later(project=route.project, user_id=route.user_id)
        changes += purchases
    return Outcome("processed", project_id=route.project.pk, changes=changes)
