"""payment_intent.* and charge.refunded: the revenue ledger and purchases (apps/entitlements), and a
failed attempt on its checkout session (apps/checkout). None of them asks Stripe anything."""

from __future__ import annotations

from apps.checkout.services import checkout_payment_failure_record
from apps.common.stripe_ids import stripe_id
from apps.entitlements import services
from apps.entitlements.projection import entitlements_recompute_later
from apps.webhooks.handlers.common import event_time, unrouted
from apps.webhooks.registry import Outcome, StripeEvent, handles
from apps.webhooks.routing import route_object


@handles("payment_intent.succeeded")
def payment_succeeded(event: StripeEvent) -> Outcome:
    intent = event.data_object
    route = route_object(intent)
    if route is None:
        return unrouted(event)
    changes = services.revenue_payment_record(
        project=route.project,
        payment_intent_id=intent["id"],
        amount=int(intent.get("amount_received") or intent.get("amount") or 0),
        currency=str(intent.get("currency") or ""),
        occurred_at=event_time(event),
        user_id=route.user_id,
    )
    return Outcome("processed", project_id=route.project.pk, changes=changes)


@handles("payment_intent.payment_failed")
def payment_failed(event: StripeEvent) -> Outcome:
    """Records why a payment failed where people look: on its checkout session, and on the event's
    ledger row (routed to the project and user at receipt), which metrics.LedgerCollector counts
    per project as billing_payment_failures_total. It grants nothing and revokes nothing."""
    route = route_object(event.data_object)
    if route is None:
        return unrouted(event)
    changes, note = checkout_payment_failure_record(
        project=route.project, intent=event.data_object, failed_at=event_time(event)
    )
    return Outcome("processed", project_id=route.project.pk, changes=changes, note=note)


@handles("charge.refunded")
def charge_refunded(event: StripeEvent) -> Outcome:
    """Appends the refund to the revenue ledger, then applies it to the purchases it paid for.

    The ledger first: a refund delivered before its purchase was recorded stays there, keyed by the
    payment intent, for purchase_record to apply (see its docstring).
    """
    charge = event.data_object
    route = route_object(charge)
    if route is None:
        return unrouted(event)
    refunded = int(charge.get("amount_refunded") or 0)
    intent_id = stripe_id(charge.get("payment_intent"))
    changes = services.revenue_refund_record(
        project=route.project,
        charge_id=charge["id"],
        amount_refunded_total=refunded,
        currency=str(charge.get("currency") or ""),
        occurred_at=event_time(event),
        payment_intent_id=intent_id,
        user_id=route.user_id,
    )
    refunded_purchases = services.purchase_refund_apply(
        project=route.project, payment_intent_id=intent_id, amount_refunded=refunded, refunded_at=event_time(event)
    )
    for user_id in sorted({user for user, _ in refunded_purchases}):
        entitlements_recompute_later(project=route.project, user_id=user_id)
    changes += [change for _, change in refunded_purchases]
    return Outcome("processed", project_id=route.project.pk, changes=changes)
