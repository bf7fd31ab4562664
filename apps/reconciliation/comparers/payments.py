"""Payment intents (status, amount, payments nothing was recorded for) and charges (amount refunded).

Our side of a payment is spread over several tables: the revenue ledger (payments and refund
increments), purchases, checkout sessions, invoices, and the customer links that name the user.
Each page reads all of them in one UNION ALL query of uniform rows (_Row), keyed by the Stripe id
each table holds.

Corrections call what the payment webhooks call: revenue_payment_record (payment_intent.succeeded),
revenue_refund_record and purchase_refund_apply (charge.refunded), and the checkout completion
services (checkout.session.completed). The ledger is append-only and refunds only grow, so a
correction can add what is missing but never take back what we recorded: those kinds are finance's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import BigIntegerField, CharField, Q, QuerySet, Value
from django.db.models.functions import Cast, Coalesce

from apps.checkout.hosted.selectors import is_invoice_session
from apps.checkout.hosted.services import hosted_session_complete
from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
from apps.checkout.services import checkout_session_complete
from apps.common import stripe_gateway
from apps.common.stripe_ids import stripe_id
from apps.entitlements import services
from apps.entitlements.models import Purchase, RevenueEntry
from apps.entitlements.projection import entitlements_recompute
from apps.projects.models import Project
from apps.reconciliation.comparers.base import Finding, ListSpec
from apps.reconciliation.comparers.common import (
    ObservedFinding,
    correction_audit,
    metadata,
    metadata_user,
    observed_now,
    stripe_side,
)
from apps.reconciliation.policy import AcceptStripeRefused, policy_for

PAYMENT_STATUS = "payment_intent_status"
PAYMENT_NOT_SUCCEEDED = "payment_intent_not_succeeded"
PAYMENT_AMOUNT = "payment_intent_amount"
PAYMENT_MISSING_LOCALLY = "payment_missing_locally"
CHARGE_REFUNDED = "charge_amount_refunded"
CHARGE_REFUND_REVERSED = "charge_refund_reversed"

_TEXT: CharField[str, str] = CharField()
_INT: BigIntegerField[int, int] = BigIntegerField()


class _Row(NamedTuple):
    """One local row, whatever its table: which table, the Stripe id it is keyed by, and its values."""

    source: str  # purchase, payment, refund, checkout, invoice, customer
    key: str  # payment intent, charge or customer id
    ref: str  # purchase: its checkout session id; checkout and invoice: our row's pk
    user_id: str
    amount: int
    amount_refunded: int
    status: str


def _text(value: str) -> Value:
    return Value(value, output_field=_TEXT)


def _int(value: int) -> Value:
    return Value(value, output_field=_INT)


def _purchases(project: Project, intent_ids: Iterable[str]) -> QuerySet[Any, Any]:
    return Purchase.objects.filter(project=project, stripe_payment_intent_id__in=intent_ids).values_list(
        _text("purchase"),
        "stripe_payment_intent_id",
        Coalesce("stripe_checkout_session_id", _text("")),
        "user_id",
        "amount",
        "amount_refunded",
        "status",
    )


def _customers(project: Project, customer_ids: Iterable[str]) -> QuerySet[Any, Any]:
    return BillingCustomer.objects.filter(project=project, stripe_customer_id__in=customer_ids).values_list(
        _text("customer"), "stripe_customer_id", _text(""), "user_id", _int(0), _int(0), _text("")
    )


def _ledger(project: Project, kind: str, **lookup: Any) -> QuerySet[Any, Any]:
    key = "stripe_object_id" if kind == RevenueEntry.Kind.PAYMENT else "stripe_charge_id"
    return RevenueEntry.objects.filter(project=project, kind=kind, **lookup).values_list(
        _text(kind), key, _text(""), _text(""), "amount", _int(0), _text("")
    )


def _rows(*querysets: QuerySet[Any, Any]) -> list[_Row]:
    # Without each model's default ordering: SQLite refuses ORDER BY inside a compound statement.
    first, *rest = (queryset.order_by() for queryset in querysets)
    return [_Row(*row) for row in first.union(*rest, all=True)]


def _first_user(*candidates: str) -> str:
    return next((user for user in candidates if user), "")


def _object_user(project: Project, obj: dict[str, Any]) -> str:
    """The user a payment or charge is ours for, as the webhooks route it: metadata, else its customer."""
    customer_id = stripe_id(obj.get("customer"))
    customer_user = (
        BillingCustomer.objects.filter(project=project, stripe_customer_id=customer_id)
        .values_list("user_id", flat=True)
        .first()
        if customer_id
        else None
    )
    return _first_user(metadata_user(project, obj), customer_user or "")


def _received(intent: dict[str, Any]) -> int:
    # What payment_intent.succeeded records: the amount received, else the amount.
    return int(intent.get("amount_received") or intent.get("amount") or 0)


def _paid_at(intent: dict[str, Any]) -> dt.datetime:
    """When a payment was made, for a ledger row or purchase recorded late: its latest charge's time
    when the charge is expanded, else the intent's creation (Checkout confirms right after it)."""
    charge = intent.get("latest_charge")
    created = charge.get("created") if isinstance(charge, dict) else None
    return dt.datetime.fromtimestamp(int(created or intent.get("created") or 0), tz=dt.UTC)


def _checkout_ref(project: Project, intent: dict[str, Any]) -> str:
    """Our checkout session row's pk from the intent's metadata ("" unless it is our project's)."""
    meta = metadata(intent)
    ref = meta.get("checkout_session")
    if meta.get("project") != project.slug or not isinstance(ref, str) or not ref.isdigit() or len(ref) > 18:
        return ""
    return ref


class PaymentIntentComparer:
    object_type = "payment_intent"

    def list_spec(self) -> ListSpec:
        return ListSpec(operation="list_page", params={})

    def compare_page(self, project: Project, stripe_objects: list[dict[str, Any]]) -> list[Finding]:
        observed = observed_now()
        ids = [obj["id"] for obj in stripe_objects]
        refs = {ref for obj in stripe_objects if (ref := _checkout_ref(project, obj))}
        customers = {stripe_id(obj.get("customer")) for obj in stripe_objects} - {""}
        sessions = CheckoutSession.objects.filter(project=project).filter(
            Q(stripe_payment_intent_id__in=ids) | Q(pk__in=[int(ref) for ref in refs])
        )
        rows = _rows(
            _purchases(project, ids),
            _ledger(project, RevenueEntry.Kind.PAYMENT, stripe_object_id__in=ids),
            sessions.values_list(
                _text("checkout"), "stripe_payment_intent_id", Cast("pk", _TEXT), "user_id", _int(0), _int(0), "status"
            ),
            Invoice.objects.filter(project=project, stripe_payment_intent_id__in=ids).values_list(
                _text("invoice"), "stripe_payment_intent_id", Cast("pk", _TEXT), "user_id", "total", _int(0), "status"
            ),
            _customers(project, customers),
        )
        by_key: dict[tuple[str, str], list[_Row]] = defaultdict(list)
        for row in rows:
            by_key[row.source, row.key].append(row)
            if row.source == "checkout":
                by_key["checkout_ref", row.ref].append(row)
        findings: list[Finding] = []
        for intent in stripe_objects:
            findings += self._compare(project, intent, by_key, observed)
        return findings

    def _compare(
        self, project: Project, intent: dict[str, Any], by_key: dict[tuple[str, str], list[_Row]], observed: int
    ) -> list[Finding]:
        pi = intent["id"]
        ref = _checkout_ref(project, intent)
        payments = by_key.get(("payment", pi), [])
        purchases = by_key.get(("purchase", pi), [])
        invoices = by_key.get(("invoice", pi), [])
        sessions = by_key.get(("checkout", pi), []) + (by_key.get(("checkout_ref", ref), []) if ref else [])
        customers = by_key.get(("customer", stripe_id(intent.get("customer"))), [])
        user_id = _first_user(
            metadata_user(project, intent), *(row.user_id for row in [*purchases, *sessions, *invoices, *customers])
        )
        status = str(intent.get("status") or "")
        received = _received(intent)

        def finding(kind: str, local: Any, stripe: Any) -> ObservedFinding:
            return ObservedFinding(
                kind=kind,
                object_type=self.object_type,
                stripe_id=pi,
                user_id=user_id,
                local_value=local,
                stripe_value=stripe,
                stripe_object=intent,
                observed_at=observed,
            )

        if status != "succeeded":
            if payments or purchases:
                return [finding(PAYMENT_NOT_SUCCEEDED, {"status": "succeeded"}, {"status": status})]
            return []
        found: list[Finding] = []
        if not payments:
            found.append(
                finding(PAYMENT_STATUS, {"revenue_recorded": False}, {"status": status, "amount_received": received})
            )
        local_amounts: dict[str, int] = {}
        if payments and payments[0].amount != received:
            local_amounts["revenue_amount"] = payments[0].amount
        # A checkout's single purchase carries the amount paid; an invoice's purchases are its lines.
        checkout_purchases = [row for row in purchases if row.ref]
        if len(checkout_purchases) == 1 and checkout_purchases[0].amount != received:
            local_amounts["purchase_amount"] = checkout_purchases[0].amount
        if local_amounts:
            found.append(finding(PAYMENT_AMOUNT, local_amounts, {"amount_received": received}))
        if ref and not purchases and not invoices:
            # Paid through one of our checkouts (our metadata), and nothing was recorded for it.
            stripe_value = {"status": status, "amount_received": received, "checkout_session": ref}
            found.append(finding(PAYMENT_MISSING_LOCALLY, None, stripe_value))
        return found

    def missing_at_stripe(self, project: Project, seen_ids: set[str]) -> Iterable[Finding]:
        return []  # Stripe never deletes a payment intent: a payment of ours not listed is not ours

    # --- corrections ----------------------------------------------------------------------------
    def correct(self, project: Project, finding: Finding) -> list[str]:
        if not policy_for(finding.kind).accept_stripe:
            raise AcceptStripeRefused(
                f"{finding.kind}: our ledger is append-only, so Stripe's side cannot be applied; "
                "keep ours or ignore, and fix it at Stripe or with a refund."
            )
        intent, _ = stripe_side(project, finding)
        if intent.get("status") != "succeeded":
            return []  # Stripe no longer says it succeeded: nothing to record
        if finding.kind == PAYMENT_MISSING_LOCALLY:
            return self._complete_checkout(project, finding, intent)
        with transaction.atomic():
            changes = self._record_payment(project, intent)
            if changes:
                correction_audit(
                    project=project,
                    finding=finding,
                    before={"revenue_recorded": False},
                    after={"revenue_recorded": True, "amount": _received(intent)},
                    changes=changes,
                )
        return changes

    def _record_payment(self, project: Project, intent: dict[str, Any]) -> list[str]:
        return services.revenue_payment_record(
            project=project,
            payment_intent_id=intent["id"],
            amount=_received(intent),
            currency=str(intent.get("currency") or ""),
            occurred_at=_paid_at(intent),
            user_id=_object_user(project, intent),
        )

    def _complete_checkout(self, project: Project, finding: Finding, intent: dict[str, Any]) -> list[str]:
        """Applies the paid Checkout session as checkout.session.completed would have.

        Stripe's session is read first, outside any transaction: our row names it, the completion
        services need it (its customer, amount, payment status). Then, in one transaction, the same
        service as the webhook's: the invoice's hosted completion, or the price checkout's.
        """
        ref = _checkout_ref(project, intent)
        local = CheckoutSession.objects.filter(project=project, pk=int(ref)).first() if ref else None
        if local is None or not local.stripe_session_id:
            raise AcceptStripeRefused(f"{intent['id']}: its checkout session {ref or '?'} is not ours or never opened.")
        session = stripe_gateway.checkout_session_retrieve(
            project_slug=project.slug, session_id=local.stripe_session_id
        )
        if stripe_id(session.get("payment_intent")) != intent["id"]:
            raise AcceptStripeRefused(
                f"{intent['id']}: checkout session {local.stripe_session_id} was paid by another payment."
            )
        paid_at = _paid_at(intent)
        with transaction.atomic():
            purchases = Purchase.objects.filter(project=project, stripe_payment_intent_id=intent["id"])
            before = {"checkout_status": local.status, "purchases": purchases.count()}
            if is_invoice_session(session=session):
                completion = hosted_session_complete(project=project, session=session, paid_at=paid_at)
                # A payment for a void invoice (or a second payment of a paid one) is only noted there,
                # for a refund: nothing was corrected, so the finding stays open for finance instead of
                # being closed as "auto-corrected" by every run.
                changes = [change for change in completion.changes if not _refund_note(change)]
                user_id = completion.user_id
            else:
                completed = checkout_session_complete(
                    project=project, user_id=local.user_id, session=session, paid_at=paid_at
                )
                changes, user_id = completed.changes, local.user_id if completed.purchase else None
            changes += self._record_payment(project, intent)
            if user_id is not None:
                entitlements_recompute(project=project, user_id=user_id)
            if changes:
                after = {
                    "checkout_status": CheckoutSession.objects.filter(pk=local.pk).values_list("status", flat=True)[0],
                    "purchases": purchases.count(),
                }
                correction_audit(project=project, finding=finding, before=before, after=after, changes=changes)
        return changes


def _refund_note(change: str) -> bool:
    return change.endswith("should be refunded") or change.endswith("is a second payment")


class ChargeComparer:
    object_type = "charge"

    def list_spec(self) -> ListSpec:
        return ListSpec(operation="list_page", params={})

    def compare_page(self, project: Project, stripe_objects: list[dict[str, Any]]) -> list[Finding]:
        observed = observed_now()
        ids = [obj["id"] for obj in stripe_objects]
        intents = {stripe_id(obj.get("payment_intent")) for obj in stripe_objects} - {""}
        customers = {stripe_id(obj.get("customer")) for obj in stripe_objects} - {""}
        rows = _rows(
            _ledger(project, RevenueEntry.Kind.REFUND, stripe_charge_id__in=ids),
            _purchases(project, intents),
            _customers(project, customers),
        )
        by_key: dict[tuple[str, str], list[_Row]] = defaultdict(list)
        for row in rows:
            by_key[row.source, row.key].append(row)
        findings: list[Finding] = []
        for charge in stripe_objects:
            findings += self._compare(project, charge, by_key, observed)
        return findings

    def _compare(
        self, project: Project, charge: dict[str, Any], by_key: dict[tuple[str, str], list[_Row]], observed: int
    ) -> list[Finding]:
        refunded = int(charge.get("amount_refunded") or 0)
        ledger = sum(row.amount for row in by_key.get(("refund", charge["id"]), []))
        # Only the charge that took the money is the purchase's: a declined attempt of the same
        # payment intent has nothing refunded, which says nothing about the purchase.
        purchases = (
            by_key.get(("purchase", stripe_id(charge.get("payment_intent"))), [])
            if charge.get("status") == "succeeded"
            else []
        )
        customers = by_key.get(("customer", stripe_id(charge.get("customer"))), [])
        user_id = _first_user(metadata_user(project, charge), *(row.user_id for row in [*purchases, *customers]))
        purchase_refunds = [row.amount_refunded for row in purchases]
        findings: list[Finding] = []
        # Ours below Stripe's: a refund we missed. Ours above: a refund Stripe no longer counts.
        for kind, sign in ((CHARGE_REFUNDED, -1), (CHARGE_REFUND_REVERSED, 1)):
            local: dict[str, int] = {}
            if (ledger - refunded) * sign > 0:
                local["amount_refunded"] = ledger
            off = [amount for amount in purchase_refunds if (amount - refunded) * sign > 0]
            if off:
                local["purchase_amount_refunded"] = max(off) if sign > 0 else min(off)
            if local:
                findings.append(
                    ObservedFinding(
                        kind=kind,
                        object_type=self.object_type,
                        stripe_id=charge["id"],
                        user_id=user_id,
                        local_value=local,
                        stripe_value={"amount_refunded": refunded},
                        stripe_object=charge,
                        observed_at=observed,
                    )
                )
        return findings

    def missing_at_stripe(self, project: Project, seen_ids: set[str]) -> Iterable[Finding]:
        return []  # charges are not deleted at Stripe; their refunds are compared above

    def correct(self, project: Project, finding: Finding) -> list[str]:
        if not policy_for(finding.kind).accept_stripe:
            raise AcceptStripeRefused(
                f"{finding.kind}: refunds only ever grow in our ledger and purchases, so a lower amount at "
                "Stripe cannot be applied; keep ours or ignore, and correct it by hand."
            )
        charge, observed = stripe_side(project, finding)
        refunded = int(charge.get("amount_refunded") or 0)
        intent_id = stripe_id(charge.get("payment_intent"))
        refunds = ((charge.get("refunds") or {}).get("data") or []) if isinstance(charge.get("refunds"), dict) else []
        # The latest refund's time when Stripe sent the refunds, else the observation: the purchase
        # ends then (its entitlement too), as charge.refunded's event time would have said.
        latest = max((int(refund.get("created") or 0) for refund in refunds), default=0) or observed
        refunded_at = dt.datetime.fromtimestamp(latest, tz=dt.UTC)
        with transaction.atomic():
            before = self._state(project, charge["id"], intent_id)
            changes = services.revenue_refund_record(
                project=project,
                charge_id=charge["id"],
                amount_refunded_total=refunded,
                currency=str(charge.get("currency") or ""),
                occurred_at=refunded_at,
                payment_intent_id=intent_id,
                user_id=_object_user(project, charge),
            )
            applied = services.purchase_refund_apply(
                project=project, payment_intent_id=intent_id, amount_refunded=refunded, refunded_at=refunded_at
            )
            for user_id in sorted({user for user, _ in applied}):
                entitlements_recompute(project=project, user_id=user_id)
            changes += [change for _, change in applied]
            if changes:
                after = self._state(project, charge["id"], intent_id)
                correction_audit(project=project, finding=finding, before=before, after=after, changes=changes)
        return changes

    def _state(self, project: Project, charge_id: str, intent_id: str) -> dict[str, Any]:
        refunds = RevenueEntry.objects.filter(
            project=project, kind=RevenueEntry.Kind.REFUND, stripe_charge_id=charge_id
        )
        purchases = Purchase.objects.filter(project=project, stripe_payment_intent_id=intent_id) if intent_id else None
        return {
            "ledger_refunded": sum(refunds.values_list("amount", flat=True)),
            "purchases": {
                str(pk): {"amount_refunded": amount, "status": status}
                for pk, amount, status in (
                    purchases.values_list("pk", "amount_refunded", "status") if purchases else []
                )
            },
        }
