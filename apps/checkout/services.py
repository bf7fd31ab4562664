"""Customers, checkout sessions and portal sessions. Validation happens before any Stripe call, so
an invalid request creates nothing at Stripe; Stripe calls happen outside database transactions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import PriceFeature
from apps.catalog.selectors import project_price
from apps.checkout.models import BillingCustomer, CheckoutSession, PortalSession
from apps.common import stripe_gateway
from apps.common.exceptions import Conflict, NotFound
from apps.common.stripe_ids import stripe_id
from apps.entitlements.models import SubscriptionRecord
from apps.entitlements.services import purchase_record
from apps.projects.models import Project
from apps.projects.redirects import url_is_allowed

log = structlog.get_logger("billing.checkout")

# Keys we set on Stripe objects so webhooks can be routed back to a project and user.
RESERVED_METADATA_KEYS = frozenset({"project", "project_id", "user_id", "checkout_session"})


def _routing_metadata(project: Project, user_id: str) -> dict[str, str]:
    return {"project": project.slug, "project_id": str(project.pk), "user_id": user_id}


def customer_get_or_create(*, project: Project, user_id: str) -> BillingCustomer:
    """The user's Stripe customer, created at Stripe on first need.

    The unique (project, user_id) row is created first; its id keys the Stripe create, so concurrent
    first requests all send the same Idempotency-Key and Stripe returns one customer to all of them.
    """
    customer, _ = BillingCustomer.objects.get_or_create(project=project, user_id=user_id)
    if customer.stripe_customer_id:
        return customer
    created = stripe_gateway.customer_create(
        project_slug=project.slug,
        idempotency_key=f"billing-customer-{customer.pk}",
        metadata=_routing_metadata(project, user_id),
    )
    BillingCustomer.objects.filter(pk=customer.pk, stripe_customer_id__isnull=True).update(
        stripe_customer_id=created["id"]
    )
    customer.refresh_from_db()
    return customer


def _validate_checkout(
    *, project: Project, price_id: str, mode: str, success_url: str, cancel_url: str, trial_days: int | None
) -> None:
    errors: dict[str, list[str]] = {}
    price = project_price(project_id=project.pk, price_id=price_id)
    if price is None:
        errors["price_id"] = [f"Price {price_id} is not in this project's catalog."]
    elif not price["active"]:
        errors["price_id"] = [f"Price {price_id} is not active."]
    elif mode == CheckoutSession.Mode.SUBSCRIPTION and price["recurring"] is None:
        errors["mode"] = ["Subscription mode needs a recurring price; this price is one-time."]
    elif mode == CheckoutSession.Mode.PAYMENT and price["recurring"] is not None:
        errors["mode"] = ["Payment mode needs a one-time price; this price is recurring."]
    for field, url in (("success_url", success_url), ("cancel_url", cancel_url)):
        if not url_is_allowed(url, project.allowed_redirect_prefixes):
            errors[field] = ["This URL does not start with one of the project's allowed redirect prefixes."]
    if trial_days is not None and mode != CheckoutSession.Mode.SUBSCRIPTION:
        errors["trial_days"] = ["Trial days apply to subscription mode only."]
    if errors:
        raise ValidationError(errors)


# Subscriptions that still give access, or will again once paid: a second one would bill twice.
# past_due counts (the fix is a new card in the portal, not a new subscription); incomplete does not
# (its first payment failed and it lapses on its own), nor do canceled, unpaid and the rest.
HELD_SUBSCRIPTION_STATUSES = frozenset({"active", "trialing", "past_due"})
PORTAL_HINT = "manage it in the customer portal: POST /api/v1/portal/session"


def _refuse_second_subscription(*, project: Project, user_id: str, price_id: str) -> None:
    """409 when the user already holds a subscription giving what this price gives.

    "What it gives" is the price's feature code, or the price itself when it has none. Projects with
    allow_multiple_subscriptions skip this. Read from our SubscriptionRecord rows (no Stripe call):
    a subscription started seconds ago whose webhook has not arrived yet is not seen, which is the
    accepted limit of a check made before Stripe is asked anything.
    """
    if project.allow_multiple_subscriptions:
        return
    features = dict(PriceFeature.objects.filter(project=project).values_list("stripe_price_id", "feature_code"))
    wanted = features.get(price_id)
    held = SubscriptionRecord.objects.filter(
        project=project, user_id=user_id, status__in=HELD_SUBSCRIPTION_STATUSES
    ).order_by("pk")
    for subscription in held:
        if wanted is not None and any(features.get(price) == wanted for price in subscription.price_ids):
            raise Conflict(
                f"User {user_id} already has an active subscription giving '{wanted}' "
                f"({subscription.stripe_subscription_id}); {PORTAL_HINT}"
            )
        if price_id in subscription.price_ids:
            raise Conflict(
                f"User {user_id} already has an active subscription to {price_id} "
                f"({subscription.stripe_subscription_id}); {PORTAL_HINT}"
            )


def _stripe_checkout_params(session: CheckoutSession, customer_id: str, project: Project) -> dict[str, Any]:
    metadata = {
        **session.metadata,
        **_routing_metadata(project, session.user_id),
        "checkout_session": str(session.pk),
    }
    params: dict[str, Any] = {
        "mode": session.mode,
        "customer": customer_id,
        "client_reference_id": session.user_id,
        "line_items": [{"price": session.stripe_price_id, "quantity": session.quantity}],
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
        "metadata": metadata,
    }
    if session.mode == CheckoutSession.Mode.SUBSCRIPTION:
        params["subscription_data"] = {"metadata": metadata}
        if session.trial_days:
            params["subscription_data"]["trial_period_days"] = session.trial_days
    else:
        params["payment_intent_data"] = {"metadata": metadata}
    return params


def checkout_session_create(
    *,
    project: Project,
    user_id: str,
    price_id: str,
    mode: str,
    success_url: str,
    cancel_url: str,
    quantity: int = 1,
    trial_days: int | None = None,
    metadata: dict[str, str] | None = None,
) -> CheckoutSession:
    _validate_checkout(
        project=project,
        price_id=price_id,
        mode=mode,
        success_url=success_url,
        cancel_url=cancel_url,
        trial_days=trial_days,
    )
    if mode == CheckoutSession.Mode.SUBSCRIPTION:
        # Before any Stripe call (the customer's creation included): a refused request creates nothing.
        _refuse_second_subscription(project=project, user_id=user_id, price_id=price_id)
    customer = customer_get_or_create(project=project, user_id=user_id)
    assert customer.stripe_customer_id is not None
    session = CheckoutSession.objects.create(
        project=project,
        customer=customer,
        user_id=user_id,
        mode=mode,
        stripe_price_id=price_id,
        quantity=quantity,
        trial_days=trial_days,
        metadata=metadata or {},
        success_url=success_url,
        cancel_url=cancel_url,
    )
    try:
        created = stripe_gateway.checkout_session_create(
            project_slug=project.slug,
            idempotency_key=f"checkout-session-{session.pk}",
            params=_stripe_checkout_params(session, customer.stripe_customer_id, project),
        )
    except (stripe_gateway.StripeInvalidRequest, stripe_gateway.StripeUnavailable) as exc:
        CheckoutSession.objects.filter(pk=session.pk).update(status=CheckoutSession.Status.FAILED, last_error=str(exc))
        raise
    session.stripe_session_id = created["id"]
    session.url = created.get("url") or ""
    session.status = CheckoutSession.Status.OPEN
    expires_at = created.get("expires_at")
    session.expires_at = dt.datetime.fromtimestamp(expires_at, tz=dt.UTC) if expires_at else None
    session.save(update_fields=["stripe_session_id", "url", "status", "expires_at", "updated_at"])
    log.info("checkout_session_created", checkout_session=session.pk, stripe_session_id=session.stripe_session_id)
    return session


def portal_session_create(*, project: Project, user_id: str, return_url: str) -> PortalSession:
    if not url_is_allowed(return_url, project.allowed_redirect_prefixes):
        raise ValidationError(
            {"return_url": ["This URL does not start with one of the project's allowed redirect prefixes."]}
        )
    customer = BillingCustomer.objects.filter(
        project=project, user_id=user_id, stripe_customer_id__isnull=False
    ).first()
    if customer is None:
        raise NotFound("This user has no Stripe customer yet: complete a checkout first.")
    assert customer.stripe_customer_id is not None
    with transaction.atomic():
        portal = PortalSession.objects.create(project=project, customer=customer, return_url=return_url)
    created = stripe_gateway.portal_session_create(
        project_slug=project.slug,
        idempotency_key=f"portal-session-{portal.pk}",
        customer_id=customer.stripe_customer_id,
        return_url=return_url,
    )
    portal.stripe_session_id = created["id"]
    portal.url = created.get("url") or ""
    portal.save(update_fields=["stripe_session_id", "url"])
    return portal


# --- what Stripe's checkout and payment events do to our rows (called by apps/webhooks) ----------
# Writes only, with no Stripe call: they run inside the event's transaction. Whatever Stripe must be
# asked (a session's line items) the webhook's fetch step asks before that transaction.


def billing_customer_link(*, project: Project, user_id: str, stripe_customer_id: str) -> bool:
    """Links a Stripe customer to the user's row if it has none yet; True when it did."""
    unlinked = BillingCustomer.objects.filter(project=project, user_id=user_id, stripe_customer_id__isnull=True)
    updated = unlinked.update(stripe_customer_id=stripe_customer_id)
    return updated > 0


@dataclass(frozen=True)
class CheckoutCompletion:
    changes: list[str]
    purchase: bool  # a paid one-time checkout: the user's entitlements need a recompute


def checkout_session_complete(
    *, project: Project, user_id: str, session: dict[str, Any], paid_at: dt.datetime, line_item_price_id: str = ""
) -> CheckoutCompletion:
    """A completed (or asynchronously paid) Stripe checkout session: our row becomes `complete` and
    learns its payment intent, the Stripe customer is linked to the user, and a paid one-time
    checkout is recorded as a purchase.

    The purchase's price is our row's; `line_item_price_id` (read from Stripe by the caller, before
    its transaction) serves for a session we have no row for.
    """
    changes: list[str] = []
    with transaction.atomic(savepoint=False):  # nested in event processing
        local = CheckoutSession.objects.select_for_update().filter(stripe_session_id=session["id"]).first()
        intent_id = stripe_id(session.get("payment_intent"))
        fields: dict[str, Any] = {}
        if local is not None and local.status != CheckoutSession.Status.COMPLETED:
            fields["status"] = CheckoutSession.Status.COMPLETED
            changes.append(f"checkout session {session['id']} complete")
        if local is not None and intent_id and not local.stripe_payment_intent_id:
            fields["stripe_payment_intent_id"] = intent_id
        if local is not None and fields:
            # updated_at too: it is a hosted session's optimistic-lock token, and .update() skips auto_now.
            CheckoutSession.objects.filter(pk=local.pk).update(**fields, updated_at=timezone.now())
        customer_id = stripe_id(session.get("customer"))
        if customer_id and billing_customer_link(project=project, user_id=user_id, stripe_customer_id=customer_id):
            changes.append(f"customer {customer_id} linked to {user_id}")
        if session.get("mode") != "payment" or session.get("payment_status") != "paid":
            return CheckoutCompletion(changes, purchase=False)
        changes += purchase_record(
            project=project,
            user_id=user_id,
            price_id=local.stripe_price_id if local is not None else line_item_price_id,
            amount=int(session.get("amount_total") or 0),
            currency=str(session.get("currency") or ""),
            paid_at=paid_at,
            payment_intent_id=intent_id,
            checkout_session_id=session["id"],
        )
    return CheckoutCompletion(changes, purchase=True)


def checkout_session_expire(*, stripe_session_id: str) -> bool:
    """Our row of an expired Stripe checkout session becomes `expired`; True when it changed.

    A completed session stays completed: Stripe does not order deliveries, and a late `expired`
    must not undo a payment.
    """
    updated = (
        CheckoutSession.objects.filter(stripe_session_id=stripe_session_id)
        .exclude(status__in=[CheckoutSession.Status.EXPIRED, CheckoutSession.Status.COMPLETED])
        .update(status=CheckoutSession.Status.EXPIRED, expired_at=timezone.now(), updated_at=timezone.now())
    )
    return updated > 0


def _checkout_of_intent(project: Project, intent: dict[str, Any]) -> CheckoutSession | None:
    """The checkout session a payment intent belongs to: by the `checkout_session` metadata we set on
    it (payment_intent_data), else by the intent id learnt from checkout.session.completed."""
    sessions = CheckoutSession.objects.filter(project=project).select_for_update()
    metadata = intent.get("metadata")
    local_id = str(metadata.get("checkout_session") or "") if isinstance(metadata, dict) else ""
    if local_id.isdigit() and len(local_id) < 19:  # a bigint primary key
        found = sessions.filter(pk=int(local_id)).first()
        if found is not None:
            return found
    intent_id = stripe_id(intent.get("id"))
    return sessions.filter(stripe_payment_intent_id=intent_id).first() if intent_id else None


def checkout_payment_failure_record(
    *, project: Project, intent: dict[str, Any], failed_at: dt.datetime
) -> tuple[list[str], str]:
    """Records a failed payment attempt on its checkout session: (changes, note for the event's row).

    The decline code (else the error code), the message and the time, unless a newer failure is
    already recorded. It grants and revokes nothing: a failed attempt says nothing about money
    already paid, and the session's status stays what Checkout says.
    """
    error = intent.get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("decline_code") or error.get("code") or "unknown")[:255]
    message = str(error.get("message") or "")[:2000]
    changes: list[str] = []
    with transaction.atomic(savepoint=False):  # nested in event processing
        local = _checkout_of_intent(project, intent)
        # An older failure delivered late must not overwrite a newer one.
        if local is not None and (local.payment_failed_at is None or failed_at >= local.payment_failed_at):
            fields = {
                "last_payment_error_code": code,
                "last_payment_error_message": message,
                "payment_failed_at": failed_at,
                "stripe_payment_intent_id": local.stripe_payment_intent_id or stripe_id(intent.get("id")),
            }
            if any(getattr(local, name) != value for name, value in fields.items()):
                CheckoutSession.objects.filter(pk=local.pk).update(**fields, updated_at=timezone.now())
                changes.append(f"checkout session {local.stripe_session_id or local.pk}: payment failed ({code})")
    where = f"checkout session {local.stripe_session_id or local.pk}" if local is not None else "no checkout session"
    note = f"payment failed: {code}" + (f" ({message})" if message else "") + f"; {where}"
    return changes, note[:2000]
