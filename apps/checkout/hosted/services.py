"""Hosted Checkout sessions of invoices: create, regenerate, and what Stripe's events do to them.

Every Stripe write follows one order. Our row first, in a short transaction that re-checks the
invoice under its row lock; then the Stripe call, after that commit, keyed by an idempotency key
derived from the row id; then the row learns Stripe's answer. No Stripe call is made while a
transaction of ours is open, so a Stripe stall never holds a lock.

A regenerate is guarded by an optimistic lock: the caller sends back the session's `updated_at` as
it read it, and one conditional UPDATE claims the session only if that is still its value (every
write of a session moves it). Of two regenerations with the same token exactly one claims it; the
other is a Conflict and nothing happens, here or at Stripe.

The webhook half (`hosted_session_complete`, `hosted_session_expire`) only writes: it runs inside
the event's transaction and never calls Stripe.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.checkout.invoices.services import invoice_finalize, invoice_mark_paid
from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice, InvoiceLine
from apps.checkout.services import customer_get_or_create
from apps.common import stripe_gateway
from apps.common.audit import audit_record
from apps.common.exceptions import Conflict, NotFound
from apps.common.query import instant_text
from apps.common.stripe_ids import stripe_id
from apps.entitlements.services import invoice_line_purchases_record
from apps.projects.models import Project
from apps.projects.redirects import url_is_allowed

log = structlog.get_logger("billing.hosted")

Status = CheckoutSession.Status
InvoiceStatus = Invoice.Status

# Stripe's own default; it accepts 30 minutes to 24 hours.
DEFAULT_EXPIRES_AFTER_SECONDS = 86_400
# A session can be created for an invoice that is not closed yet: creating one finalizes a draft.
CREATABLE_FOR = frozenset({InvoiceStatus.DRAFT, InvoiceStatus.OPEN})
# What can still be paid: Stripe lets an uncollectible invoice be paid after all.
PAYABLE = frozenset({InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE})
# Sessions an operator (or recovery) may replace. Not `completed` (paid), `regenerated` (already
# replaced), `creating` (Stripe has not answered yet) or `failed` (create a new one instead).
REGENERABLE = frozenset({Status.OPEN, Status.EXPIRED, Status.ABANDONED})


def _expires_after() -> dt.timedelta:
    return dt.timedelta(
        seconds=int(getattr(settings, "HOSTED_SESSION_EXPIRES_AFTER_SECONDS", DEFAULT_EXPIRES_AFTER_SECONDS))
    )


def _routing_metadata(session: CheckoutSession, invoice: Invoice, project: Project) -> dict[str, str]:
    # What the webhook router reads (apps/webhooks/routing.py) plus our two row ids. Stripe copies a
    # session's metadata onto the session it opens from a recovery URL, so those carry them too.
    return {
        "project": project.slug,
        "project_id": str(project.pk),
        "user_id": invoice.user_id,
        "invoice_id": str(invoice.pk),
        "checkout_session": str(session.pk),
    }


def _stripe_params(
    session: CheckoutSession, invoice: Invoice, lines: list[InvoiceLine], customer_id: str
) -> dict[str, Any]:
    metadata = _routing_metadata(session, invoice, session.project)
    expires_at = timezone.now() + _expires_after()
    return {
        "mode": CheckoutSession.Mode.PAYMENT,
        "customer": customer_id,
        "client_reference_id": invoice.user_id,
        # One inline price per line: Stripe multiplies unit_amount by quantity, which is our
        # line_total, so the session's amount_total is the invoice's total.
        "line_items": [
            {
                "price_data": {
                    "currency": invoice.currency,
                    "unit_amount": line.unit_amount,
                    "product_data": {"name": line.product_name},
                },
                "quantity": line.quantity,
            }
            for line in lines
        ],
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "expires_at": int(expires_at.timestamp()),
        "after_expiration": {"recovery": {"enabled": True}},
    }


def _refuse_unless(invoice: Invoice, allowed: frozenset[str], action: str) -> None:
    if invoice.status not in allowed:
        raise Conflict(f"Invoice #{invoice.pk} is {invoice.status}: cannot {action}.")


def _validate_urls(project: Project, success_url: str, cancel_url: str) -> None:
    errors = {
        field: ["This URL does not start with one of the project's allowed redirect prefixes."]
        for field, url in (("success_url", success_url), ("cancel_url", cancel_url))
        if not url_is_allowed(url, project.allowed_redirect_prefixes)
    }
    if errors:
        raise ValidationError(errors)


def _stripe_customer(invoice: Invoice) -> BillingCustomer:
    """The invoice's customer with its Stripe customer (created at Stripe on first need: a Stripe
    call, so never inside a transaction)."""
    if invoice.customer.stripe_customer_id:
        return invoice.customer
    return customer_get_or_create(project=invoice.project, user_id=invoice.user_id)


def _session_row(
    *,
    invoice: Invoice,
    customer: BillingCustomer,
    success_url: str,
    cancel_url: str,
    regenerated_from: CheckoutSession | None,
) -> CheckoutSession:
    return CheckoutSession.objects.create(
        project_id=invoice.project_id,
        customer=customer,
        user_id=invoice.user_id,
        mode=CheckoutSession.Mode.PAYMENT,
        stripe_price_id="",
        invoice=invoice,
        regenerated_from=regenerated_from,
        success_url=success_url,
        cancel_url=cancel_url,
        status=Status.CREATING,
    )


def _session_state(session: CheckoutSession) -> dict[str, Any]:
    return {
        "checkout_session": session.pk,
        "invoice_id": session.invoice_id,
        "status": session.status,
        "stripe_session_id": session.stripe_session_id,
        "updated_at": instant_text(session.updated_at),
    }


def _mark_failed(session: CheckoutSession, error: str) -> None:
    CheckoutSession.objects.filter(pk=session.pk).update(
        status=Status.FAILED, last_error=error[:2000], updated_at=timezone.now()
    )


def _open_at_stripe(session: CheckoutSession) -> CheckoutSession:
    """Creates the Stripe session of a `creating` row (committed), then records Stripe's answer.

    If the invoice was closed (paid by another session, voided) while Stripe created it, the new
    session is expired at once so that nobody can pay a closed invoice, and the caller gets a 409.
    """
    assert session.invoice_id is not None
    invoice = Invoice.objects.select_related("project").get(pk=session.invoice_id)
    customer_id = session.customer.stripe_customer_id
    assert customer_id is not None  # _stripe_customer ran before the row was created
    lines = list(InvoiceLine.objects.filter(invoice=invoice).order_by("position"))
    try:
        created = stripe_gateway.checkout_session_create(
            project_slug=invoice.project.slug,
            idempotency_key=f"checkout-session-{session.pk}",
            params=_stripe_params(session, invoice, lines, customer_id),
        )
    except (stripe_gateway.StripeInvalidRequest, stripe_gateway.StripeUnavailable) as exc:
        _mark_failed(session, str(exc))
        raise
    now = timezone.now()
    expires_at = created.get("expires_at")
    fields: dict[str, Any] = {
        "stripe_session_id": created["id"],
        "url": created.get("url") or "",
        "expires_at": dt.datetime.fromtimestamp(expires_at, tz=dt.UTC) if expires_at else None,
        "status": Status.OPEN,
        "updated_at": now,
    }
    with transaction.atomic():
        # Under the invoice's lock, which invoice_mark_paid and the void take too.
        current = Invoice.objects.select_for_update().values_list("status", flat=True).get(pk=invoice.pk)
        if current not in PAYABLE:
            fields.update(status=Status.EXPIRED, expired_at=now, last_error=f"invoice became {current}")
        CheckoutSession.objects.filter(pk=session.pk).update(**fields)
    if current not in PAYABLE:
        stripe_gateway.checkout_session_expire(
            project_slug=invoice.project.slug,
            session_id=created["id"],
            idempotency_key=f"checkout-session-expire-{session.pk}",
        )
        raise Conflict(f"Invoice #{invoice.pk} became {current} meanwhile: its new session was expired at once.")
    log.info("hosted_session_opened", checkout_session=session.pk, invoice=invoice.pk, stripe_session_id=created["id"])
    session.refresh_from_db()
    return session


def hosted_session_create(*, invoice_id: int, success_url: str, cancel_url: str, actor: str) -> CheckoutSession:
    """A hosted Checkout session paying the whole invoice; a draft invoice becomes open.

    Everything that can be refused is checked before anything is written or sent: an unknown
    invoice (NotFound), a URL outside the project's allowlist (ValidationError), an invoice that is
    not draft or open, or that totals nothing (Conflict).
    """
    invoice = Invoice.objects.select_related("project", "customer").filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound(f"No invoice {invoice_id}.")
    _validate_urls(invoice.project, success_url, cancel_url)
    _refuse_unless(invoice, CREATABLE_FOR, "create a hosted session")
    if invoice.total <= 0:
        raise Conflict(f"Invoice #{invoice.pk} totals 0 {invoice.currency}: there is nothing to pay.")
    customer = _stripe_customer(invoice)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        _refuse_unless(locked, CREATABLE_FOR, "create a hosted session")  # again, under the lock
        if locked.status == InvoiceStatus.DRAFT:
            invoice_finalize(invoice_id=locked.pk, actor=actor)
        session = _session_row(
            invoice=locked, customer=customer, success_url=success_url, cancel_url=cancel_url, regenerated_from=None
        )
        audit_record(
            actor=actor,
            action="hosted_session.create",
            target=f"checkout session #{session.pk}",
            project_id=locked.project_id,
            after=_session_state(session),
        )
    return _open_at_stripe(session)


def _expire_replaced(old: CheckoutSession, new: CheckoutSession) -> None:
    """Expires the replaced session at Stripe so that only the new one can be paid.

    Stripe refuses to expire a session that is not open. Expired already (by its clock) is what we
    wanted; paid meanwhile means the invoice is being paid, so no new session is opened (the
    completion's webhook records the payment on the old session).
    """
    assert old.stripe_session_id is not None
    slug = old.project.slug
    try:
        stripe_gateway.checkout_session_expire(
            project_slug=slug, session_id=old.stripe_session_id, idempotency_key=f"checkout-session-expire-{old.pk}"
        )
    except stripe_gateway.StripeInvalidRequest as exc:
        current = stripe_gateway.checkout_session_retrieve(project_slug=slug, session_id=old.stripe_session_id)
        if current.get("status") == "expired":
            return
        _mark_failed(new, f"the replaced session could not be expired: {exc}")
        if current.get("status") == "complete":
            raise Conflict(f"Session #{old.pk} was paid meanwhile; no new session was created.") from exc
        raise
    except stripe_gateway.StripeUnavailable as exc:
        _mark_failed(new, f"the replaced session could not be expired: {exc}")
        raise


def _refuse_closed(invoice: Invoice) -> None:
    if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID):
        raise Conflict(f"Invoice #{invoice.pk} is {invoice.status}: its sessions cannot be regenerated.")


def hosted_session_regenerate(*, session_id: int, expected_updated_at: dt.datetime, actor: str) -> CheckoutSession:
    """Replaces a session of an unpaid invoice by a new one, under the optimistic lock.

    Conflict (and nothing changes, here or at Stripe) when `expected_updated_at` is not the
    session's current `updated_at`, when the session cannot be replaced (completed, replaced
    already, never opened) or when its invoice is paid or void. Otherwise the old session is marked
    `regenerated` and the new one (`regenerated_from` = old) is created in the same transaction,
    audited; after the commit the old one is expired at Stripe if it was open, and the new one is
    opened there. If Stripe fails then, the new row is `failed` (create another with
    POST .../checkout) and the old one stays replaced.
    """
    old = CheckoutSession.objects.select_related("project", "customer").filter(pk=session_id).first()
    if old is None or old.invoice_id is None:
        raise NotFound(f"No hosted session {session_id}.")
    stale = Conflict(
        f"Session #{old.pk} changed since you read it (updated_at is not {instant_text(expected_updated_at)} "
        "any more): read it again and retry."
    )
    # The early checks spare a lock for a request that cannot win; the claim below decides.
    if old.updated_at != expected_updated_at:
        raise stale
    if old.status not in REGENERABLE:
        raise Conflict(
            f"Session #{old.pk} is {old.status}: only open, expired or abandoned sessions can be regenerated."
        )
    assert old.invoice is not None
    _refuse_closed(old.invoice)
    customer = old.customer if old.customer.stripe_customer_id else _stripe_customer(old.invoice)
    now = timezone.now()
    with transaction.atomic():
        # The invoice's lock orders us with its payment and its void: neither lands between the
        # check and the claim.
        invoice = Invoice.objects.select_for_update().get(pk=old.invoice_id)
        _refuse_closed(invoice)
        # The claim: one conditional UPDATE. `status` is pinned to the value read above, so that
        # "was it open (then expire it at Stripe)" is decided on what was claimed.
        claimed = CheckoutSession.objects.filter(pk=old.pk, updated_at=expected_updated_at, status=old.status).update(
            status=Status.REGENERATED, updated_at=now
        )
        if claimed != 1:
            raise stale
        new = _session_row(
            invoice=invoice,
            customer=customer,
            success_url=old.success_url,
            cancel_url=old.cancel_url,
            regenerated_from=old,
        )
        audit_record(
            actor=actor,
            action="hosted_session.regenerate",
            target=f"checkout session #{old.pk}",
            project_id=invoice.project_id,
            before=_session_state(old),
            after={"status": Status.REGENERATED, "updated_at": instant_text(now), "new_session": new.pk},
        )
    expired_at_stripe = False
    try:
        if old.status == Status.OPEN and old.stripe_session_id:
            _expire_replaced(old, new)
            expired_at_stripe = True
        log.info("hosted_session_regenerated", checkout_session=old.pk, new_session=new.pk, actor=actor)
        return _open_at_stripe(new)
    except Exception:
        _claim_undo(old, new, claimed_at=now, expired_at_stripe=expired_at_stripe)
        raise


def _claim_undo(
    old: CheckoutSession, new: CheckoutSession, *, claimed_at: dt.datetime, expired_at_stripe: bool
) -> None:
    """Stripe refused or was away after the claim: the old session stays the invoice's way back.

    Without this the old row would stay `regenerated` and the new one `failed`, and neither would
    ever be recovered or regenerated again. The failed row lets go of the old one (regenerated_from
    is one-to-one); the old row takes back its status, or `expired` if Stripe expired it already.
    A concurrent change (the payment's webhook) moved updated_at and wins.
    """
    now = timezone.now()
    restored: dict[str, Any] = {"status": old.status, "updated_at": now}
    if expired_at_stripe:
        restored.update(status=Status.EXPIRED, expired_at=old.expired_at or now)
    with transaction.atomic():
        CheckoutSession.objects.filter(pk=new.pk).update(regenerated_from=None, updated_at=now)
        CheckoutSession.objects.filter(pk=old.pk, status=Status.REGENERATED, updated_at=claimed_at).update(**restored)
    log.warning("hosted_session_regenerate_undone", checkout_session=old.pk, failed_session=new.pk)


# --- what Stripe's checkout.session events do (called by apps/webhooks, inside its transaction) ---


@dataclass(frozen=True)
class HostedCompletion:
    changes: list[str]
    user_id: str | None  # whose entitlements need a recompute (None: no purchase was recorded)


def _ts(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC) if isinstance(value, int | float) and value else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _recovered_row(project: Project, session: dict[str, Any], now: dt.datetime) -> tuple[CheckoutSession | None, str]:
    """The row of a session Stripe opened from our session's recovery URL, created on first sight.

    Stripe gives it `recovered_from` (our old session's id) and the old session's metadata. It pays
    the same invoice: a new row links to it (`regenerated_from` = the old one, unless an operator
    already replaced that one), and the old session is marked `regenerated`.
    """
    old = (
        CheckoutSession.objects.select_for_update()
        .filter(project=project, stripe_session_id=_text(session.get("recovered_from")), invoice__isnull=False)
        .first()
    )
    if old is None:
        return None, ""
    # Under the old row's lock: a concurrent delivery of the same event may have created it.
    existing = CheckoutSession.objects.select_for_update().filter(stripe_session_id=session["id"]).first()
    if existing is not None:
        return existing, ""
    replaced = CheckoutSession.objects.filter(regenerated_from=old).exists()
    row = CheckoutSession.objects.create(
        project=project,
        customer=old.customer,
        user_id=old.user_id,
        mode=CheckoutSession.Mode.PAYMENT,
        stripe_price_id="",
        invoice_id=old.invoice_id,
        regenerated_from=None if replaced else old,
        # The invoice's recovery budget spans its chain of sessions: a copy Stripe opened from a
        # recovery link that expires unpaid in turn does not start again at attempt 1.
        recovery_attempts=old.recovery_attempts,
        last_recovery_at=old.last_recovery_at,
        metadata={},
        success_url=_text(session.get("success_url")) or old.success_url,
        cancel_url=_text(session.get("cancel_url")) or old.cancel_url,
        status=Status.OPEN,
        stripe_session_id=session["id"],
        expires_at=_ts(session.get("expires_at")),
    )
    if old.status in REGENERABLE:
        CheckoutSession.objects.filter(pk=old.pk).update(status=Status.REGENERATED, updated_at=now)
    return row, f"checkout session {session['id']} (recovered from {old.stripe_session_id}) recorded as #{row.pk}"


def _local_row(project: Project, session: dict[str, Any], now: dt.datetime) -> tuple[CheckoutSession | None, str]:
    """Our invoice session row for a Stripe session, locked; (None, "") when it is not one of ours."""
    row = (
        CheckoutSession.objects.select_for_update()
        .filter(project=project, stripe_session_id=session["id"], invoice__isnull=False)
        .first()
    )
    if row is not None:
        return row, ""
    metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
    local_id = _text((metadata or {}).get("checkout_session"))
    if local_id.isdigit() and len(local_id) < 19 and not session.get("recovered_from"):
        # Our row whose Stripe create succeeded but whose answer was never recorded (a crash, a
        # timeout after Stripe applied it): the session's metadata names it.
        orphan = (
            CheckoutSession.objects.select_for_update()
            .filter(project=project, pk=int(local_id), stripe_session_id__isnull=True, invoice__isnull=False)
            .first()
        )
        if orphan is not None:
            CheckoutSession.objects.filter(pk=orphan.pk).update(stripe_session_id=session["id"], updated_at=now)
            orphan.stripe_session_id = session["id"]
            return orphan, f"checkout session #{orphan.pk} linked to {session['id']}"
    if session.get("recovered_from"):
        return _recovered_row(project, session, now)
    return None, ""


def _invoice_pay(invoice: Invoice, *, paid_at: dt.datetime, payment_intent_id: str) -> list[str]:
    """Marks the invoice paid by this payment, unless it is paid already or closed.

    Never raises for a closed invoice: the payment happened at Stripe whatever our state says, so
    the event must not fail (it would be retried forever); the note tells finance to refund it.
    """
    if invoice.status in PAYABLE:
        invoice_mark_paid(invoice_id=invoice.pk, paid_at=paid_at, payment_intent_id=payment_intent_id)
        invoice.refresh_from_db()
        return [f"invoice #{invoice.pk} paid ({payment_intent_id or 'no payment intent'})"]
    if invoice.status == InvoiceStatus.PAID:
        first = invoice.stripe_payment_intent_id
        if payment_intent_id and first and payment_intent_id != first:
            log.warning("hosted_invoice_paid_twice", invoice=invoice.pk, payment_intent=payment_intent_id)
            return [f"invoice #{invoice.pk} was already paid by {first}: {payment_intent_id} is a second payment"]
        return []
    log.warning(
        "hosted_invoice_closed_but_paid", invoice=invoice.pk, status=invoice.status, payment_intent=payment_intent_id
    )
    return [f"invoice #{invoice.pk} is {invoice.status}: payment {payment_intent_id} should be refunded"]


def hosted_session_complete(*, project: Project, session: dict[str, Any], paid_at: dt.datetime) -> HostedCompletion:
    """checkout.session.completed (or async_payment_succeeded) of an invoice session.

    The session becomes `completed` (completed_at, the customer's email, the payment intent); when
    the payment is made (`payment_status: paid`) the invoice becomes paid and each line with a
    feature code becomes a purchase. Idempotent: a second delivery changes nothing; a late
    `expired` cannot undo it (see hosted_session_expire).
    """
    now = timezone.now()
    with transaction.atomic(savepoint=False):  # nested in event processing
        local, found = _local_row(project, session, now)
        if local is None:
            return HostedCompletion([], None)
        changes = [found] if found else []
        intent_id = stripe_id(session.get("payment_intent"))
        details = session.get("customer_details") if isinstance(session.get("customer_details"), dict) else {}
        email = _text((details or {}).get("email")) or _text(session.get("customer_email"))
        fields: dict[str, Any] = {}
        if local.status != Status.COMPLETED:
            fields.update(status=Status.COMPLETED, completed_at=paid_at)
            changes.append(f"checkout session {session['id']} completed")
        if intent_id and not local.stripe_payment_intent_id:
            fields["stripe_payment_intent_id"] = intent_id
        if email and not local.customer_email:
            fields["customer_email"] = email[:254]
        if fields:
            CheckoutSession.objects.filter(pk=local.pk).update(**fields, updated_at=now)
        if session.get("payment_status") != "paid":
            return HostedCompletion(changes, None)  # an asynchronous payment: async_payment_succeeded pays
        assert local.invoice_id is not None  # _local_row finds invoice sessions only
        invoice = Invoice.objects.select_for_update().get(pk=local.invoice_id)
        changes += _invoice_pay(invoice, paid_at=paid_at, payment_intent_id=intent_id)
        if invoice.status != InvoiceStatus.PAID:
            return HostedCompletion(changes, None)
        lines = list(
            InvoiceLine.objects.select_related("invoice")
            .filter(invoice=invoice)
            .exclude(feature_code="")
            .order_by("position")
        )
        changes += invoice_line_purchases_record(
            project=project,
            user_id=invoice.user_id,
            lines=lines,
            payment_intent_id=invoice.stripe_payment_intent_id,
            paid_at=invoice.paid_at or paid_at,
        )
    return HostedCompletion(changes, invoice.user_id)


def hosted_session_expire(*, project: Project, session: dict[str, Any], expired_at: dt.datetime) -> list[str]:
    """checkout.session.expired of an invoice session: `expired`, with Stripe's recovery URL.

    Only an open (or still creating) session becomes expired; a completed one stays completed
    whatever order the events come in, and one the sweep expired first keeps its expired_at. The
    recovery URL (after_expiration.recovery) is stored on a session that is expired or abandoned.
    """
    now = timezone.now()
    with transaction.atomic(savepoint=False):  # nested in event processing
        local = (
            CheckoutSession.objects.select_for_update()
            .filter(project=project, stripe_session_id=session["id"], invoice__isnull=False)
            .first()
        )
        if local is None:
            return []
        changes: list[str] = []
        fields: dict[str, Any] = {}
        status = local.status
        if status in (Status.CREATING, Status.OPEN):
            status = Status.EXPIRED
            fields.update(status=status, expired_at=local.expired_at or expired_at)
            changes.append(f"checkout session {session['id']} expired")
        elif status == Status.REGENERATED and local.expired_at is None:
            fields["expired_at"] = expired_at
        after = session.get("after_expiration") if isinstance(session.get("after_expiration"), dict) else {}
        recovery = (after or {}).get("recovery")
        recovery = recovery if isinstance(recovery, dict) else {}
        url = _text(recovery.get("url"))
        if url and status in (Status.EXPIRED, Status.ABANDONED) and url != local.recovery_url:
            fields.update(recovery_url=url, recovery_url_expires_at=_ts(recovery.get("expires_at")))
            changes.append(f"checkout session {session['id']}: recovery URL stored")
        email = _text((session.get("customer_details") or {}).get("email")) or _text(session.get("customer_email"))
        if email and not local.customer_email:
            # Recovery emails the customer too once Stripe knows the address (typed before leaving).
            fields["customer_email"] = email[:254]
        if fields:
            CheckoutSession.objects.filter(pk=local.pk).update(**fields, updated_at=now)
    return changes
