"""checkout.session.*: our CheckoutSession's state machine lives in apps/checkout/services.py, and
for the hosted sessions of invoices in apps/checkout/hosted/services.py."""

from __future__ import annotations

from dataclasses import dataclass

from apps.checkout import services
from apps.checkout.hosted import services as hosted
from apps.checkout.hosted.selectors import is_invoice_session
from apps.checkout.selectors import checkout_session_price_id
from apps.common import stripe_gateway
from apps.entitlements.projection import entitlements_recompute_later
from apps.webhooks.handlers.common import event_time, unrouted
from apps.webhooks.registry import Outcome, StripeEvent, handles, handles_in_steps
from apps.webhooks.routing import Route, route_object


@dataclass(frozen=True)
class CompletedFetched:
    route: Route | None
    line_item_price_id: str  # from Stripe, for a paid one-time session we have no row for
    invoice: bool = False  # it pays one of our invoices: everything needed is in the event


def _fetch_completed(event: StripeEvent) -> CompletedFetched:
    session = event.data_object
    route = route_object(session)
    if route is None:
        return CompletedFetched(None, "")
    if is_invoice_session(session=session):
        # Its lines are our invoice's (price_data, no catalog price): nothing to ask Stripe.
        return CompletedFetched(route, "", invoice=True)
    paid_payment = session.get("mode") == "payment" and session.get("payment_status") == "paid"
    if not paid_payment or checkout_session_price_id(stripe_session_id=session["id"]) is not None:
        return CompletedFetched(route, "")
    # A session made outside the service: only Stripe knows what was bought.
    items = stripe_gateway.checkout_session_line_items(project_slug=route.project.slug, session_id=session["id"])
    return CompletedFetched(route, str((items[0].get("price") or {}).get("id") or "") if items else "")


@handles_in_steps("checkout.session.completed", "checkout.session.async_payment_succeeded", fetch=_fetch_completed)
def checkout_completed(event: StripeEvent, fetched: CompletedFetched) -> Outcome:
    route = fetched.route
    if route is None:
        return unrouted(event)
    if fetched.invoice:
        paid = hosted.hosted_session_complete(
            project=route.project, session=event.data_object, paid_at=event_time(event)
        )
        if paid.user_id is not None:
            entitlements_recompute_later(project=route.project, user_id=paid.user_id)
        return Outcome("processed", project_id=route.project.pk, changes=paid.changes)
    completion = services.checkout_session_complete(
        project=route.project,
        user_id=route.user_id,
        session=event.data_object,
        paid_at=event_time(event),
        line_item_price_id=fetched.line_item_price_id,
    )
    if completion.purchase:
        entitlements_recompute_later(project=route.project, user_id=route.user_id)
    return Outcome("processed", project_id=route.project.pk, changes=completion.changes)


@handles("checkout.session.expired")
def checkout_expired(event: StripeEvent) -> Outcome:
    session = event.data_object
    route = route_object(session)
    if route is not None and is_invoice_session(session=session):
        changes = hosted.hosted_session_expire(project=route.project, session=session, expired_at=event_time(event))
        return Outcome("processed", project_id=route.project.pk, changes=changes)
    expired = services.checkout_session_expire(stripe_session_id=session["id"])
    if route is None and not expired:
        return unrouted(event)
    changes = [f"checkout session {session['id']} expired"] if expired else []
    return Outcome("processed", project_id=route.project.pk if route else None, changes=changes)
