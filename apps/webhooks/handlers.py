"""The effects of Stripe events on our records. Each handler is idempotent: applying an event twice,
or an older event after a newer one, changes nothing the second time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from djstripe.models import Price

from apps.catalog.models import CatalogProduct
from apps.catalog.sync import catalog_product_upsert_from_stripe, price_upsert_from_stripe
from apps.checkout.models import BillingCustomer, CheckoutSession
from apps.common import stripe_gateway
from apps.entitlements import services
from apps.entitlements.models import SubscriptionRecord
from apps.entitlements.projection import entitlements_recompute
from apps.webhooks.registry import Outcome, StripeEvent, handles
from apps.webhooks.routing import Route, project_of, route_object


def _at(event: StripeEvent) -> dt.datetime:
    return dt.datetime.fromtimestamp(event.created, tz=dt.UTC)


def _id(value: Any) -> str:
    """An expandable field: an id string, or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _unrouted(event: StripeEvent) -> Outcome:
    return Outcome("ignored", note=f"{event.type}: the object belongs to no known project")


def _apply_subscription(route: Route, data: dict[str, Any], event: StripeEvent) -> Outcome:
    def refetch() -> dict[str, Any]:
        return stripe_gateway.object_retrieve(
            project_slug=route.project.slug, object_type="subscription", object_id=data["id"]
        )

    changes, note = services.subscription_apply_snapshot(
        project=route.project,
        user_id=route.user_id,
        data=data,
        event_created=event.created,
        event_id=event.id,
        refetch=refetch,
    )
    if changes:
        entitlements_recompute(project=route.project, user_id=route.user_id)
    return Outcome("processed", project_id=route.project.pk, changes=changes, note=note)


@handles(
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
def subscription_changed(event: StripeEvent) -> Outcome:
    route = route_object(event.data_object)
    if route is None:
        return _unrouted(event)
    return _apply_subscription(route, event.data_object, event)


def _ensure_subscription_known(route: Route, subscription_id: str, event: StripeEvent) -> list[str]:
    """An invoice about a subscription we never heard of: fetch the subscription from Stripe."""
    if not subscription_id or SubscriptionRecord.objects.filter(stripe_subscription_id=subscription_id).exists():
        return []
    data = stripe_gateway.object_retrieve(
        project_slug=route.project.slug, object_type="subscription", object_id=subscription_id
    )
    return _apply_subscription(route, data, event).changes


def _invoice_subscription_id(invoice: dict[str, Any]) -> str:
    details = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    value = details or invoice.get("subscription") or ""
    return str(value.get("id") if isinstance(value, dict) else value)


def _invoice_payment_intent(invoice: dict[str, Any]) -> str:
    """The payment intent that paid an invoice: in `payments` on the current API, at the top before."""
    for payment in (invoice.get("payments") or {}).get("data") or []:
        intent = (payment.get("payment") or {}).get("payment_intent")
        if intent:
            return str(intent.get("id") if isinstance(intent, dict) else intent)
    intent = invoice.get("payment_intent")
    return str(intent.get("id") if isinstance(intent, dict) else intent or "")


@handles("invoice.payment_succeeded", "invoice.paid", "invoice.payment_failed")
def invoice_payment(event: StripeEvent) -> Outcome:
    invoice = event.data_object
    route = route_object(invoice)
    if route is None:
        return _unrouted(event)
    subscription_id = _invoice_subscription_id(invoice)
    changes = _ensure_subscription_known(route, subscription_id, event)
    if not subscription_id and event.type != "invoice.payment_failed" and invoice.get("status") == "paid":
        # A one-off invoice: each priced line is a one-time purchase.
        for line in (invoice.get("lines") or {}).get("data") or []:
            price = ((line.get("pricing") or {}).get("price_details") or {}).get("price") or line.get("price")
            price_id = str(price.get("id") if isinstance(price, dict) else price or "")
            if not price_id:
                continue
            changes += services.purchase_record(
                project=route.project,
                user_id=route.user_id,
                price_id=price_id,
                amount=int(line.get("amount") or 0),
                currency=str(invoice.get("currency") or ""),
                paid_at=_at(event),
                payment_intent_id=_invoice_payment_intent(invoice),
                invoice_id=f"{invoice['id']}:{line.get('id') or price_id}",
            )
        if changes:
            entitlements_recompute(project=route.project, user_id=route.user_id)
    return Outcome("processed", project_id=route.project.pk, changes=changes)


@handles("checkout.session.completed", "checkout.session.async_payment_succeeded")
def checkout_completed(event: StripeEvent) -> Outcome:
    session = event.data_object
    route = route_object(session)
    if route is None:
        return _unrouted(event)
    changes: list[str] = []
    local = CheckoutSession.objects.filter(stripe_session_id=session["id"]).first()
    intent_id = _id(session.get("payment_intent"))
    if local is not None and local.status != CheckoutSession.Status.COMPLETE:
        CheckoutSession.objects.filter(pk=local.pk).update(status=CheckoutSession.Status.COMPLETE)
        changes.append(f"checkout session {session['id']} complete")
    if local is not None and intent_id and not local.stripe_payment_intent_id:
        CheckoutSession.objects.filter(pk=local.pk).update(stripe_payment_intent_id=intent_id)
    customer_id = str(session.get("customer") or "")
    if customer_id:
        updated = BillingCustomer.objects.filter(
            project=route.project, user_id=route.user_id, stripe_customer_id__isnull=True
        ).update(stripe_customer_id=customer_id)
        if updated:
            changes.append(f"customer {customer_id} linked to {route.user_id}")
    if session.get("mode") == "payment" and session.get("payment_status") == "paid":
        if local is not None:
            price_id = local.stripe_price_id
        else:
            items = stripe_gateway.checkout_session_line_items(
                project_slug=route.project.slug, session_id=session["id"]
            )
            price_id = str((items[0].get("price") or {}).get("id") or "") if items else ""
        changes += services.purchase_record(
            project=route.project,
            user_id=route.user_id,
            price_id=price_id,
            amount=int(session.get("amount_total") or 0),
            currency=str(session.get("currency") or ""),
            paid_at=_at(event),
            payment_intent_id=intent_id,
            checkout_session_id=session["id"],
        )
        entitlements_recompute(project=route.project, user_id=route.user_id)
    return Outcome("processed", project_id=route.project.pk, changes=changes)


@handles("checkout.session.expired")
def checkout_expired(event: StripeEvent) -> Outcome:
    session = event.data_object
    route = route_object(session)
    updated = CheckoutSession.objects.filter(stripe_session_id=session["id"]).exclude(
        status=CheckoutSession.Status.EXPIRED
    )
    count = updated.update(status=CheckoutSession.Status.EXPIRED)
    if route is None and count == 0:
        return _unrouted(event)
    changes = [f"checkout session {session['id']} expired"] if count else []
    return Outcome("processed", project_id=route.project.pk if route else None, changes=changes)


@handles("payment_intent.succeeded")
def payment_succeeded(event: StripeEvent) -> Outcome:
    intent = event.data_object
    route = route_object(intent)
    if route is None:
        return _unrouted(event)
    changes = services.revenue_payment_record(
        project=route.project,
        payment_intent_id=intent["id"],
        amount=int(intent.get("amount_received") or intent.get("amount") or 0),
        currency=str(intent.get("currency") or ""),
        occurred_at=_at(event),
    )
    return Outcome("processed", project_id=route.project.pk, changes=changes)


def _checkout_of_intent(route: Route, intent: dict[str, Any]) -> CheckoutSession | None:
    """The checkout session a payment intent belongs to: by the `checkout_session` metadata we set on
    it (payment_intent_data), else by the intent id learnt from checkout.session.completed."""
    sessions = CheckoutSession.objects.filter(project=route.project)
    metadata = intent.get("metadata")
    local_id = str(metadata.get("checkout_session") or "") if isinstance(metadata, dict) else ""
    if local_id.isdigit() and len(local_id) < 19:  # a bigint primary key
        found = sessions.filter(pk=int(local_id)).first()
        if found is not None:
            return found
    intent_id = _id(intent.get("id"))
    return sessions.filter(stripe_payment_intent_id=intent_id).first() if intent_id else None


@handles("payment_intent.payment_failed")
def payment_failed(event: StripeEvent) -> Outcome:
    """Records why a payment failed where people look: on its checkout session, and on the event's
    ledger row (routed to the project and user at receipt), which metrics.LedgerCollector counts
    per project as billing_payment_failures_total.

    It grants nothing and revokes nothing: a failed attempt says nothing about money already paid
    (a later attempt of the same intent may still succeed, and a purchase stands until refunded).
    """
    intent = event.data_object
    route = route_object(intent)
    if route is None:
        return _unrouted(event)
    error = intent.get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("decline_code") or error.get("code") or "unknown")[:255]
    message = str(error.get("message") or "")[:2000]
    failed_at = _at(event)
    changes: list[str] = []
    local = _checkout_of_intent(route, intent)
    # An older failure delivered late must not overwrite a newer one.
    if local is not None and (local.payment_failed_at is None or failed_at >= local.payment_failed_at):
        fields = {
            "last_payment_error_code": code,
            "last_payment_error_message": message,
            "payment_failed_at": failed_at,
            "stripe_payment_intent_id": local.stripe_payment_intent_id or _id(intent.get("id")),
        }
        if any(getattr(local, name) != value for name, value in fields.items()):
            CheckoutSession.objects.filter(pk=local.pk).update(**fields)
            changes.append(f"checkout session {local.stripe_session_id or local.pk}: payment failed ({code})")
    where = f"checkout session {local.stripe_session_id or local.pk}" if local is not None else "no checkout session"
    note = f"payment failed: {code}" + (f" ({message})" if message else "") + f"; {where}"
    return Outcome("processed", project_id=route.project.pk, changes=changes, note=note[:2000])


@handles("charge.refunded")
def charge_refunded(event: StripeEvent) -> Outcome:
    """Appends the refund to the revenue ledger, then applies it to the purchases it paid for.

    The ledger first: a refund delivered before its purchase was recorded stays there, keyed by the
    payment intent, for purchase_record to apply (see its docstring).
    """
    charge = event.data_object
    route = route_object(charge)
    if route is None:
        return _unrouted(event)
    refunded = int(charge.get("amount_refunded") or 0)
    intent_id = _id(charge.get("payment_intent"))
    changes = services.revenue_refund_record(
        project=route.project,
        charge_id=charge["id"],
        amount_refunded_total=refunded,
        currency=str(charge.get("currency") or ""),
        occurred_at=_at(event),
        payment_intent_id=intent_id,
    )
    refunded_purchases = services.purchase_refund_apply(
        project=route.project, payment_intent_id=intent_id, amount_refunded=refunded, refunded_at=_at(event)
    )
    for user_id in sorted({user for user, _ in refunded_purchases}):
        entitlements_recompute(project=route.project, user_id=user_id)
    changes += [change for _, change in refunded_purchases]
    return Outcome("processed", project_id=route.project.pk, changes=changes)


@handles("product.created", "product.updated", "product.deleted")
def product_changed(event: StripeEvent) -> Outcome:
    product = event.data_object
    linked = CatalogProduct.objects.select_related("project").filter(stripe_product_id=product["id"]).first()
    project = linked.project if linked is not None else project_of(product)
    if project is None:
        return _unrouted(event)
    if event.type == "product.deleted":
        count = CatalogProduct.objects.filter(stripe_product_id=product["id"]).update(active=False)
        return Outcome(
            "processed", project_id=project.pk, changes=[f"product {product['id']} inactive"] if count else []
        )
    # Catalog events are rare and carry no version: applying Stripe's current object means an old
    # event delivered late can never roll a newer name or state back.
    current = stripe_gateway.object_retrieve(project_slug=project.slug, object_type="product", object_id=product["id"])
    before = (
        CatalogProduct.objects.filter(stripe_product_id=product["id"]).values("name", "description", "active").first()
    )
    catalog_product_upsert_from_stripe(project=project, data=current)
    after = (
        CatalogProduct.objects.filter(stripe_product_id=product["id"]).values("name", "description", "active").first()
    )
    changes = [f"product {product['id']}: {before} -> {after}"] if before != after else []
    return Outcome("processed", project_id=project.pk, changes=changes)


@handles("price.created", "price.updated", "price.deleted")
def price_changed(event: StripeEvent) -> Outcome:
    price = event.data_object
    product_id = str(price.get("product") or "")
    linked = CatalogProduct.objects.select_related("project").filter(stripe_product_id=product_id).first()
    if linked is None:
        return _unrouted(event)
    current = stripe_gateway.object_retrieve(
        project_slug=linked.project.slug, object_type="price", object_id=price["id"]
    )
    before = Price.objects.filter(id=price["id"]).values_list("stripe_data", flat=True).first()
    price_upsert_from_stripe(project=linked.project, data=current)
    changed = before is None or {k: v for k, v in before.items() if k != "djstripe"} != {
        k: v for k, v in current.items() if k != "djstripe"
    }
    return Outcome(
        "processed", project_id=linked.project.pk, changes=[f"price {price['id']} synced"] if changed else []
    )
