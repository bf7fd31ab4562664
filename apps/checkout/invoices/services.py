"""Invoices: create (priced from the catalog), and the status moves (finalize, pay, void, uncollectible).

Nothing here calls Stripe: an invoice reaches Stripe when a hosted session is created for it
(apps/checkout/hosted/services.py, which calls `invoice_finalize`), and learns it was paid from
Stripe's webhook (`invoice_mark_paid`). Every status move is a conditional UPDATE
(apps/checkout/invoices/transitions.py), so concurrent moves cannot both win.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

from apps.checkout.invoices import transitions
from apps.checkout.invoices.pricing import lines_price
from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice, InvoiceLine
from apps.common import stripe_gateway
from apps.common.audit import audit_record
from apps.common.exceptions import Conflict, NestedValidationError
from apps.projects.models import Project

log = structlog.get_logger("billing.invoices")

Status = Invoice.Status
DUE_IN_THE_PAST = "Must be in the future."


def invoice_create(
    *,
    project: Project,
    user_id: str,
    currency: str,
    lines: Sequence[Mapping[str, Any]],
    due_at: dt.datetime | None = None,
    actor: str,
) -> Invoice:
    """A draft invoice with its priced lines; amounts are fixed now.

    Everything is validated before anything is written (a 400 naming every problem, and no row
    written); then the customer row, the invoice and its lines are written in one transaction. The
    customer row is only our BillingCustomer: its Stripe customer is created with the first hosted
    session, not here (an invoice that is never sent to Stripe leaves nothing at Stripe).
    """
    errors: dict[str, Any] = {}
    if due_at is not None and due_at <= timezone.now():
        errors["due_at"] = [DUE_IN_THE_PAST]
    priced = []
    try:
        priced = lines_price(project_id=project.pk, currency=currency, lines=lines)
    except NestedValidationError as exc:
        errors |= exc.detail
    if errors:
        raise NestedValidationError(errors)
    subtotal = sum(line.line_total for line in priced)
    with transaction.atomic():
        customer, _ = BillingCustomer.objects.get_or_create(project=project, user_id=user_id)
        invoice = Invoice.objects.create(
            project=project,
            customer=customer,
            user_id=user_id,
            currency=currency,
            subtotal=subtotal,
            # No tax or discount exists on an invoice yet: the total is the subtotal.
            total=subtotal,
            due_at=due_at,
            created_by=actor,
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                position=position,
                product_id=line.product_id,
                product_name=line.product_name,
                quantity=line.quantity,
                base_amount=line.base_amount,
                unit_amount=line.unit_amount,
                line_total=line.line_total,
                options=line.options,
                add_ons=line.add_ons,
                plan=line.plan,
                custom_fields=line.custom_fields,
                breakdown=line.breakdown,
                feature_code=line.feature_code,
                purchase_duration_days=line.purchase_duration_days,
            )
            for position, line in enumerate(priced)
        )
    log.info("invoice_created", invoice=invoice.pk, project=project.slug, total=invoice.total, currency=currency)
    return invoice


def _audited_move(
    *, invoice: Invoice, transition: transitions.Transition, actor: str, reason: str, audit_action: str
) -> Invoice:
    now = timezone.now()
    with transaction.atomic():
        claim = transitions.transition_claim(invoice_id=invoice.pk, transition=transition, at=now)
        if not claim.won:
            raise transitions.refusal(invoice.pk, claim.status, transition)
        stamp = {transition.stamp: now.isoformat()} if transition.stamp else {}
        audit_record(
            actor=actor,
            action=audit_action,
            target=f"invoice #{invoice.pk}",
            reason=reason,
            project_id=invoice.project_id,
            before={"status": claim.status},
            after={"status": transition.target, **stamp},
        )
    invoice.refresh_from_db()
    log.info(audit_action.replace(".", "_"), invoice=invoice.pk, actor=actor, previous_status=claim.status)
    return invoice


def invoice_void(*, invoice: Invoice, actor: str, reason: str = "") -> Invoice:
    """draft, open or uncollectible → void (audited); Conflict otherwise, and nothing changes.

    A void invoice can no longer be paid: once the move is committed, its open hosted sessions are
    expired at Stripe, then here. Should Stripe be away, a payment that still arrives is not applied
    (invoice_mark_paid refuses it and logs it for a refund) and the sweep expires the row later.
    """
    voided = _audited_move(
        invoice=invoice, transition=transitions.VOID, actor=actor, reason=reason, audit_action="invoice.void"
    )
    _open_sessions_expire(invoice_id=voided.pk)
    return voided


def _open_sessions_expire(*, invoice_id: int) -> int:
    """Expires the invoice's open hosted sessions at Stripe, then here (no transaction is open)."""
    expired = 0
    sessions = CheckoutSession.objects.filter(invoice_id=invoice_id, status=CheckoutSession.Status.OPEN)
    for session in sessions.exclude(stripe_session_id=None).select_related("project"):
        assert session.stripe_session_id is not None
        try:
            stripe_gateway.checkout_session_expire(
                project_slug=session.project.slug,
                session_id=session.stripe_session_id,
                idempotency_key=f"checkout-session-expire-{session.pk}",
            )
        except (stripe_gateway.StripeInvalidRequest, stripe_gateway.StripeUnavailable) as exc:
            # Not open at Stripe any more (its expired or completed event settles the row), or away.
            log.warning("void_invoice_session_not_expired", invoice=invoice_id, session=session.pk, error=str(exc))
            continue
        now = timezone.now()
        expired += CheckoutSession.objects.filter(pk=session.pk, status=CheckoutSession.Status.OPEN).update(
            status=CheckoutSession.Status.EXPIRED, expired_at=now, updated_at=now
        )
    return expired


def invoice_mark_uncollectible(*, invoice: Invoice, actor: str, reason: str = "") -> Invoice:
    """open → uncollectible (audited); Conflict otherwise. It can still be paid afterwards, as at Stripe."""
    return _audited_move(
        invoice=invoice,
        transition=transitions.MARK_UNCOLLECTIBLE,
        actor=actor,
        reason=reason,
        audit_action="invoice.mark_uncollectible",
    )


def invoice_finalize(*, invoice_id: int, actor: str = "") -> bool:
    """Before its hosted session is created: draft → open (True). An open or uncollectible invoice
    stays as it is (False: it may get another session, and Stripe lets an uncollectible invoice be
    paid). A paid or void one is a Conflict: no session may be created for it.

    Not audited here: the caller (the hosted-session service) audits the session it creates."""
    claim = transitions.transition_claim(invoice_id=invoice_id, transition=transitions.FINALIZE, at=timezone.now())
    if claim.won:
        log.info("invoice_finalized", invoice=invoice_id, actor=actor)
        return True
    if claim.status in (Status.OPEN, Status.UNCOLLECTIBLE):
        return False
    raise Conflict(f"Invoice {invoice_id} is {claim.status}: no checkout session can be created for it.")


def invoice_mark_paid(*, invoice_id: int, payment_intent_id: str, paid_at: dt.datetime) -> bool:
    """open or uncollectible → paid, with the payment that paid it; True when this call did it.

    Idempotent: a duplicate or replayed delivery finds it paid and changes nothing (False). A draft
    or void invoice is not paid either (False), and logged: money Stripe took for a void invoice is
    for finance to refund.
    """
    claim = transitions.transition_claim(
        invoice_id=invoice_id,
        transition=transitions.PAY,
        at=paid_at,
        fields={"stripe_payment_intent_id": payment_intent_id},
    )
    if claim.won:
        log.info("invoice_paid", invoice=invoice_id, payment_intent=payment_intent_id, previous_status=claim.status)
        return True
    if claim.status == Status.PAID:
        known = Invoice.objects.filter(pk=invoice_id).values_list("stripe_payment_intent_id", flat=True).first()
        if known and payment_intent_id and known != payment_intent_id:
            # Two sessions of one invoice were both paid: the second payment needs a refund.
            log.warning("invoice_paid_twice", invoice=invoice_id, paid_by=known, payment_intent=payment_intent_id)
        return False
    log.warning(
        "invoice_payment_not_applied", invoice=invoice_id, status=claim.status, payment_intent=payment_intent_id
    )
    return False
