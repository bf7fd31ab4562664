"""customer.subscription.*: the SubscriptionRecord follows the newest snapshot (apps/entitlements).

The same-second tie is decided by a plain read before the transaction, so that the Stripe fetch it
needs holds no lock; the apply decides again under the row lock (subscription_apply_snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.common import stripe_gateway
from apps.entitlements import services
from apps.entitlements.projection import entitlements_recompute_later
from apps.webhooks.handlers.common import unrouted
from apps.webhooks.registry import FetchAgain, Outcome, StripeEvent, handles_in_steps
from apps.webhooks.routing import Route, route_object

SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)


@dataclass(frozen=True)
class SubscriptionFetched:
    route: Route | None
    data: dict[str, Any]  # the event's snapshot, or Stripe's current object when `current`
    current: bool


def subscription_of(event: StripeEvent) -> str:
    """The subscription a customer.subscription.* event writes; "" for any other event (or a payload
    of the wrong shape, which the event's own fetch step reports)."""
    data = event.data_object
    subscription_id = data.get("id") if event.type in SUBSCRIPTION_EVENTS and isinstance(data, dict) else None
    return subscription_id if isinstance(subscription_id, str) else ""


def subscription_retrieve(route: Route, subscription_id: str) -> dict[str, Any]:
    return stripe_gateway.object_retrieve(
        project_slug=route.project.slug, object_type="subscription", object_id=subscription_id
    )


def subscription_apply(route: Route, data: dict[str, Any], event: StripeEvent, *, current: bool) -> Outcome:
    """Applies a snapshot (inside the event's transaction) and recomputes if anything changed."""
    try:
        changes, note = services.subscription_apply_snapshot(
            project=route.project,
            user_id=route.user_id,
            data=data,
            event_created=event.created,
            event_id=event.id,
            current=current,
        )
    except services.SubscriptionTie as exc:
        # A same-second event was applied since fetch looked: Stripe's current object must decide,
        # and it is fetched outside the transaction, so roll back and fetch again.
        raise FetchAgain(str(exc)) from exc
    if changes:
        entitlements_recompute_later(project=route.project, user_id=route.user_id)
    return Outcome("processed", project_id=route.project.pk, changes=changes, note=note)


def _fetch(event: StripeEvent) -> SubscriptionFetched:
    data = event.data_object
    route = route_object(data)
    if route is None:
        return SubscriptionFetched(None, data, current=False)
    fate = services.subscription_event_decide(
        subscription_id=data["id"], event_created=event.created, event_id=event.id
    )
    if fate == "tie":
        return SubscriptionFetched(route, subscription_retrieve(route, data["id"]), current=True)
    return SubscriptionFetched(route, data, current=False)


@handles_in_steps(*SUBSCRIPTION_EVENTS, fetch=_fetch)
def subscription_changed(event: StripeEvent, fetched: SubscriptionFetched) -> Outcome:
    if fetched.route is None:
        return unrouted(event)
    return subscription_apply(fetched.route, fetched.data, event, current=fetched.current)
