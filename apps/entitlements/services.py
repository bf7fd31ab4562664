"""Writes to entitlement sources from Stripe snapshots: subscriptions, purchases, refunds, revenue.

Each returns the list of changes it made (empty when the snapshot changed nothing), so replays are
observably idempotent and a dry run can say what it would do. Callers recompute the projection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

from django.db import IntegrityError, transaction

from apps.catalog.models import PriceFeature
from apps.common.locks import advisory_xact_lock
from apps.common.stripe_ids import stripe_id
from apps.entitlements.models import Purchase, RevenueEntry, SubscriptionRecord
from apps.projects.models import Project

if TYPE_CHECKING:  # a type only: invoices are apps/checkout's, which calls this with its lines
    from apps.checkout.models import InvoiceLine

Snapshot = dict[str, Any]


def _ts(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC) if value else None


def _subscription_fields(data: Snapshot) -> dict[str, Any]:
    items = (data.get("items") or {}).get("data") or []
    starts = [item["current_period_start"] for item in items if item.get("current_period_start")]
    ends = [item["current_period_end"] for item in items if item.get("current_period_end")]
    return {
        "stripe_customer_id": stripe_id(data.get("customer")),
        "status": str(data.get("status") or ""),
        "price_ids": sorted({stripe_id(item.get("price")) for item in items if item.get("price")}),
        "current_period_start": _ts(min(starts)) if starts else None,
        "current_period_end": _ts(max(ends)) if ends else None,
        "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
        "canceled_at": _ts(data.get("canceled_at")),
        "ended_at": _ts(data.get("ended_at")),
    }


# Per batch of events (apps/webhooks/batches.py), so that what every event of the batch reads costs
# one statement for the batch instead of one per event. None outside a batch: every call reads.
# subscription id -> (last_event_created, last_event_id), None when there is no row; read on entry.
_decisions: ContextVar[dict[str, tuple[int, str] | None] | None] = ContextVar("subscription_decisions", default=None)
# subscription id -> its row, locked by this transaction (None: it had no row when the batch locked).
_locked: ContextVar[dict[str, SubscriptionRecord | None] | None] = ContextVar("subscription_rows", default=None)
# project id -> {price id: (feature code, purchase duration in days)}, each read on first use.
_price_features: ContextVar[dict[int, dict[str, tuple[str, int | None]]] | None] = ContextVar(
    "price_features", default=None
)


@contextmanager
def subscription_decisions_prefetched(subscription_ids: Iterable[str]) -> Iterator[None]:
    """Within: subscription_event_decide answers for these subscriptions from one read made on entry.

    For a batch's fetch steps, which run before any of its writes: the state read on entry is the one
    each decide would have read (a plain read, overtaken as easily; apply decides again under the lock).
    """
    ids = sorted(set(subscription_ids))
    states: dict[str, tuple[int, str] | None] = dict.fromkeys(ids)
    for subscription_id, created, event_id in SubscriptionRecord.objects.filter(
        stripe_subscription_id__in=ids
    ).values_list("stripe_subscription_id", "last_event_created", "last_event_id"):
        states[subscription_id] = (created, event_id)
    token = _decisions.set(states)
    try:
        yield
    finally:
        _decisions.reset(token)


@contextmanager
def subscription_rows_locked(subscription_ids: Iterable[str]) -> Iterator[None]:
    """Within (inside the transaction that writes them): the subscriptions' rows, locked on entry in one
    statement, serve subscription_apply_snapshot without a lock statement per event.

    They are locked in primary key order, so two batches sharing rows wait instead of deadlocking. A
    row is kept as this transaction last wrote it; subscription_rows_forget() when a savepoint that
    may have written one rolls back.
    """
    rows: dict[str, SubscriptionRecord | None] = dict.fromkeys(set(subscription_ids))
    for record in (
        SubscriptionRecord.objects.select_for_update().filter(stripe_subscription_id__in=list(rows)).order_by("pk")
    ):
        rows[record.stripe_subscription_id] = record
    token = _locked.set(rows)
    try:
        yield
    finally:
        _locked.reset(token)


def subscription_rows_forget() -> None:
    """A savepoint rolled back: the kept rows may hold writes it undid, so they are read again (still
    locked: the batch's locks were taken outside the savepoint)."""
    rows = _locked.get()
    if rows is not None:
        rows.clear()


@contextmanager
def price_features_memoized() -> Iterator[None]:
    """Within: each project's price -> feature map is read once, for the purchases recorded meanwhile.
    For a batch of events, which never change the map (it is the operator's)."""
    token = _price_features.set({})
    try:
        yield
    finally:
        _price_features.reset(token)


def _subscription_row_locked(subscription_id: str) -> SubscriptionRecord | None:
    """The subscription's row, locked; None when it has none yet."""
    rows = _locked.get()
    if rows is not None and subscription_id in rows:
        return rows[subscription_id]  # locked with the batch's others
    return SubscriptionRecord.objects.select_for_update().filter(stripe_subscription_id=subscription_id).first()


def _subscription_row_keep(record: SubscriptionRecord) -> None:
    rows = _locked.get()
    if rows is not None:
        rows[record.stripe_subscription_id] = record


def _subscription_row_insert(record: SubscriptionRecord) -> bool:
    """Inserts a subscription's first row; False when another transaction inserted it first.

    Locking a row that does not exist yet locks nothing, so two first events for one subscription
    would both insert. The insert runs in a savepoint: the loser of that race waits on the unique
    index, gets IntegrityError, and then locks the winner's row like any later event.
    """
    try:
        with transaction.atomic():
            record.save(force_insert=True)
    except IntegrityError:
        return False
    return True


SubscriptionFate = Literal["new", "apply", "stale", "tie"]


def _fate(*, last_created: int, last_id: str, event_created: int, event_id: str) -> SubscriptionFate:
    if last_id == "":
        return "new"
    if event_created < last_created:
        return "stale"
    if event_created == last_created and event_id != last_id:
        # Same second, another event: `created` cannot order them, only Stripe's current object can.
        return "tie"
    return "apply"


def subscription_event_decide(*, subscription_id: str, event_created: int, event_id: str) -> SubscriptionFate:
    """What an event about a subscription calls for, read without a lock or a transaction.

    "new": no event applied yet; "stale": a newer one was applied (skip it); "tie": one of the same
    second with another id was applied, so the caller fetches Stripe's current object *before* its
    transaction and applies that (current=True); "apply": apply the event's snapshot.

    A plain read, so that the Stripe call a tie needs is made while no row is locked. The decision
    can be overtaken before the caller locks the row; subscription_apply_snapshot checks it again
    under the lock (see there). Inside subscription_decisions_prefetched() the batch's read answers.
    """
    prefetched = _decisions.get()
    if prefetched is not None and subscription_id in prefetched:
        last = prefetched[subscription_id]
    else:
        last = (
            SubscriptionRecord.objects.filter(stripe_subscription_id=subscription_id)
            .values_list("last_event_created", "last_event_id")
            .first()
        )
    if last is None:
        return "new"
    return _fate(last_created=last[0], last_id=last[1], event_created=event_created, event_id=event_id)


class SubscriptionTie(Exception):
    """Under the row lock, a same-second event turned out to be applied since the caller decided.

    Only Stripe's current object can order the two: the caller rolls back, fetches it outside any
    transaction, and applies it with current=True.
    """


def _snapshot_set(record: SubscriptionRecord, data: Snapshot, *, event_created: int, event_id: str) -> list[str]:
    """Sets the snapshot's fields on the row (not saved); the changes it makes."""
    fresh = record.last_event_id == ""
    fields = _subscription_fields(data)
    was_past_due = not fresh and record.status == "past_due"
    if fields["status"] == "past_due":
        # The later of two lower bounds. A renewal fails when it opens the period, so never
        # before current_period_start (this also corrects a state refetched under an older
        # event's timestamp); a mid-period invoice (an upgrade) fails later, at the event.
        became = max(filter(None, [_ts(event_created), fields["current_period_start"]]))
        fields["past_due_since"] = record.past_due_since if was_past_due else became
    else:
        fields["past_due_since"] = None
    if fresh:
        changes = [f"subscription {data['id']} recorded as {fields['status']}"]
    else:
        changes = [
            f"subscription {data['id']} {name}: {getattr(record, name)!s} -> {value!s}"
            for name, value in fields.items()
            if getattr(record, name) != value
        ]
    for name, value in fields.items():
        setattr(record, name, value)
    record.last_event_created = max(record.last_event_created, event_created)
    record.last_event_id = event_id
    record.stripe_data = data
    return changes


def subscription_apply_snapshot(
    *,
    project: Project,
    user_id: str,
    data: Snapshot,
    event_created: int,
    event_id: str,
    current: bool = False,
) -> tuple[list[str], str]:
    """Applies a subscription snapshot unless a newer one was already applied. (changes, note)

    Writes only; never calls Stripe (it runs inside the event's transaction, holding the row lock).
    `current`: `data` is Stripe's current object, fetched by the caller after subscription_event_decide
    said "tie" (or because the subscription was unknown); it wins a same-second tie. Without it, a
    tie found under the lock raises SubscriptionTie, so the caller can fetch and try again.
    """
    with transaction.atomic(savepoint=False):  # nested in event processing; see projection.py
        record = _subscription_row_locked(data["id"])
        if record is None:
            # The first event of the subscription: its row is inserted whole, in one statement.
            first = SubscriptionRecord(project=project, user_id=user_id, stripe_subscription_id=data["id"], status="")
            changes = _snapshot_set(first, data, event_created=event_created, event_id=event_id)
            if _subscription_row_insert(first):
                _subscription_row_keep(first)
                return changes, ""
            record = SubscriptionRecord.objects.select_for_update().get(stripe_subscription_id=data["id"])
        # Decided again under the lock: another worker may have applied a newer event, or one of the
        # same second, since the caller's unlocked read.
        fate = _fate(
            last_created=record.last_event_created,
            last_id=record.last_event_id,
            event_created=event_created,
            event_id=event_id,
        )
        if fate == "stale":
            return [], f"stale: {record.last_event_id} (newer) is already applied"
        if fate == "tie" and not current:
            raise SubscriptionTie(f"{data['id']}: {record.last_event_id} is of the same second as {event_id}")
        changes = _snapshot_set(record, data, event_created=event_created, event_id=event_id)
        record.save()
        _subscription_row_keep(record)
        return changes, ""


def _price_feature(project: Project, price_id: str) -> tuple[str, int | None] | None:
    """(feature code, purchase duration in days) of a price of the project; None when it has none."""
    memo = _price_features.get()
    if memo is None:
        feature = PriceFeature.objects.filter(project=project, stripe_price_id=price_id).first()
        return None if feature is None else (feature.feature_code, feature.purchase_duration_days)
    if project.pk not in memo:
        memo[project.pk] = {
            price: (code, days)
            for price, code, days in PriceFeature.objects.filter(project=project).values_list(
                "stripe_price_id", "feature_code", "purchase_duration_days"
            )
        }
    return memo[project.pk].get(price_id)


def _purchase_window(project: Project, price_id: str, paid_at: dt.datetime) -> tuple[str, dt.datetime | None]:
    feature = _price_feature(project, price_id)
    if feature is None:
        return "", None
    code, days = feature
    return code, (paid_at + dt.timedelta(days=days)) if days else None


def _lock_payment(key: str) -> None:
    """Serialises, until the transaction ends, the writers of one payment's purchase and refund state.

    `key` is the payment intent (or, for a charge without one, the charge). A purchase and its
    refund arrive as separate events that two workers may process at once: the refund would find no
    committed purchase, the purchase no committed refund, and the refund would be lost; two
    deliveries of one charge's refunds would each append an increment. Whichever takes this lock
    second runs after the first committed, and sees its rows. (SQLite runs one writer at a time.)
    """
    advisory_xact_lock(f"payment:{key}")


def _purchase_refund(purchase: Purchase, *, amount_refunded: int, refunded_at: dt.datetime) -> str | None:
    """Raises the purchase's cumulative refund to `amount_refunded`; never lowers it. The change, or None.

    Stripe's `amount_refunded` is cumulative, so a partial refund delivered after the full one is
    simply smaller and changes nothing; `refunded_at` is the time of the refund that set the maximum.
    """
    if amount_refunded <= purchase.amount_refunded:
        return None
    purchase.amount_refunded = amount_refunded
    if amount_refunded >= purchase.amount:
        purchase.status = Purchase.Status.REFUNDED
    purchase.refunded_at = refunded_at
    purchase.save()
    return f"purchase #{purchase.pk} refunded {amount_refunded}/{purchase.amount}"


def _refund_seen(*, project: Project, payment_intent_id: str) -> tuple[int, dt.datetime] | None:
    """The cumulative refund the revenue ledger holds for a payment intent, and when it was reached.

    The ledger appends a refund row only when a charge's cumulative refund grows, so the rows sum to
    the largest cumulative seen and the newest row is the refund that reached it.
    """
    rows = list(
        RevenueEntry.objects.filter(
            project=project, kind=RevenueEntry.Kind.REFUND, stripe_payment_intent_id=payment_intent_id
        )
        .order_by("id")
        .values_list("amount", "occurred_at")
    )
    if not rows:
        return None
    return sum(amount for amount, _ in rows), rows[-1][1]


def purchase_record(
    *,
    project: Project,
    user_id: str,
    price_id: str,
    amount: int,
    currency: str,
    paid_at: dt.datetime,
    payment_intent_id: str,
    checkout_session_id: str | None = None,
    invoice_id: str | None = None,
) -> list[str]:
    """Records a paid one-time purchase once per checkout session or invoice.

    Stripe does not order deliveries: the payment's `charge.refunded` may come before the
    `checkout.session.completed` (or invoice) that records the purchase. Refunds are therefore made
    durable before any purchase exists: charge.refunded always appends to the revenue ledger, whose
    refund rows carry the payment intent (revenue_refund_record). A purchase created here takes any
    refund already seen for its payment intent, and purchase_refund_apply updates the purchases that
    already exist. Both only ever raise the cumulative refund, under one lock per payment intent, so
    the two handlers commute: every delivery order ends in the same purchase.
    """
    feature_code, valid_to = _purchase_window(project, price_id, paid_at)
    lookup: dict[str, Any] = (
        {"stripe_checkout_session_id": checkout_session_id}
        if checkout_session_id
        else {"stripe_invoice_id": invoice_id}
    )
    with transaction.atomic(savepoint=False):  # nested in event processing; see projection.py
        if payment_intent_id:
            _lock_payment(payment_intent_id)
        purchase, created = Purchase.objects.get_or_create(
            **lookup,
            defaults={
                "project": project,
                "user_id": user_id,
                "stripe_price_id": price_id,
                "feature_code": feature_code,
                "stripe_payment_intent_id": payment_intent_id,
                "amount": amount,
                "currency": currency,
                "valid_from": paid_at,
                "valid_to": valid_to,
            },
        )
        if not created:
            return []
        span = f"until {valid_to:%Y-%m-%d}" if valid_to else "for life"
        changes = [f"purchase #{purchase.pk} of {price_id} ({feature_code or 'no feature'}) {span}"]
        seen = _refund_seen(project=project, payment_intent_id=payment_intent_id) if payment_intent_id else None
        if seen is not None:
            refunded = _purchase_refund(purchase, amount_refunded=seen[0], refunded_at=seen[1])
            if refunded is not None:
                changes.append(f"{refunded} (the refund arrived first)")
    return changes


def _invoice_payment_intent(invoice: Snapshot) -> str:
    """The payment intent that paid an invoice: in `payments` on the current API, at the top before."""
    for payment in (invoice.get("payments") or {}).get("data") or []:
        intent = (payment.get("payment") or {}).get("payment_intent")
        if intent:
            return stripe_id(intent)
    return stripe_id(invoice.get("payment_intent"))


def invoice_purchases_record(*, project: Project, user_id: str, invoice: Snapshot, paid_at: dt.datetime) -> list[str]:
    """Records each priced line of a paid one-off invoice (one without a subscription) as a purchase."""
    changes: list[str] = []
    for line in (invoice.get("lines") or {}).get("data") or []:
        price = ((line.get("pricing") or {}).get("price_details") or {}).get("price") or line.get("price")
        price_id = stripe_id(price)
        if not price_id:
            continue
        changes += purchase_record(
            project=project,
            user_id=user_id,
            price_id=price_id,
            amount=int(line.get("amount") or 0),
            currency=str(invoice.get("currency") or ""),
            paid_at=paid_at,
            payment_intent_id=_invoice_payment_intent(invoice),
            invoice_id=f"{invoice['id']}:{line.get('id') or price_id}",
        )
    return changes


def invoice_line_purchases_record(
    *,
    project: Project,
    user_id: str,
    lines: Sequence[InvoiceLine],
    payment_intent_id: str,
    paid_at: dt.datetime,
) -> list[str]:
    """Records each paid line of one of our own invoices that has a feature code as a purchase, once.

    Keyed by the line (Purchase.invoice_line), so a redelivered completion records nothing twice.
    The line's snapshot decides: its feature code, and its duration from `paid_at` (none: for life);
    its amount is the line total. The purchase carries the payment intent, so that a refund of that
    payment ends it (purchase_refund_apply), and it takes any refund already seen for the intent,
    as purchase_record does: Stripe may deliver the charge.refunded first. Stripe's refund amount is
    the charge's cumulative one, compared with each line's total: a full refund ends every line.
    `lines` carry their invoice (select_related) for its currency.
    """
    changes: list[str] = []
    paid = [line for line in lines if line.feature_code]
    if not paid:
        return changes
    with transaction.atomic(savepoint=False):  # nested in event processing; see projection.py
        if payment_intent_id:
            _lock_payment(payment_intent_id)
        seen = _refund_seen(project=project, payment_intent_id=payment_intent_id) if payment_intent_id else None
        for line in paid:
            days = line.purchase_duration_days
            purchase, created = Purchase.objects.get_or_create(
                invoice_line=line,
                defaults={
                    "project": project,
                    "user_id": user_id,
                    "stripe_price_id": "",  # an inline price_data line: no catalog price at Stripe
                    "feature_code": line.feature_code,
                    "stripe_payment_intent_id": payment_intent_id,
                    "amount": line.line_total,
                    "currency": line.invoice.currency,
                    "valid_from": paid_at,
                    "valid_to": paid_at + dt.timedelta(days=days) if days else None,
                },
            )
            if not created:
                continue
            span = f"until {purchase.valid_to:%Y-%m-%d}" if purchase.valid_to else "for life"
            changes.append(f"purchase #{purchase.pk} of invoice line #{line.pk} ({line.feature_code}) {span}")
            if seen is not None:
                refunded = _purchase_refund(purchase, amount_refunded=seen[0], refunded_at=seen[1])
                if refunded is not None:
                    changes.append(f"{refunded} (the refund arrived first)")
    return changes


def purchase_refund_apply(
    *, project: Project, payment_intent_id: str, amount_refunded: int, refunded_at: dt.datetime
) -> list[tuple[str, str]]:
    """Applies a charge's cumulative refund to the purchases it paid for. [(user_id, change)]

    A refund of a purchase not recorded yet is not lost: the caller has appended it to the revenue
    ledger first, and purchase_record applies it (see there).
    """
    changed: list[tuple[str, str]] = []
    if not payment_intent_id:
        return changed
    with transaction.atomic():
        _lock_payment(payment_intent_id)
        for purchase in Purchase.objects.select_for_update().filter(
            project=project, stripe_payment_intent_id=payment_intent_id
        ):
            change = _purchase_refund(purchase, amount_refunded=amount_refunded, refunded_at=refunded_at)
            if change is not None:
                changed.append((purchase.user_id, change))
    return changed


def _payment_user(*, project: Project, payment_intent_id: str) -> str:
    """The user a payment intent's money belongs to, from what we recorded for it: its purchase, else
    a ledger row of the same intent that names one. "" when neither does."""
    if not payment_intent_id:
        return ""
    for rows in (
        Purchase.objects.filter(project=project, stripe_payment_intent_id=payment_intent_id),
        RevenueEntry.objects.filter(project=project, stripe_payment_intent_id=payment_intent_id).exclude(user_id=""),
    ):
        user_id = rows.order_by("id").values_list("user_id", flat=True).first()
        if user_id:
            return user_id
    return ""


def revenue_payment_record(
    *,
    project: Project,
    payment_intent_id: str,
    amount: int,
    currency: str,
    occurred_at: dt.datetime,
    user_id: str = "",
) -> list[str]:
    """Appends a payment once per payment intent.

    `user_id` is the caller's routing of the payment (its metadata, or its customer: a subscription
    invoice's payment names no purchase); without one, the purchase of the same intent names the user.
    """
    _, created = RevenueEntry.objects.get_or_create(
        kind=RevenueEntry.Kind.PAYMENT,
        stripe_object_id=payment_intent_id,
        defaults={
            "project": project,
            "user_id": user_id or _payment_user(project=project, payment_intent_id=payment_intent_id),
            "stripe_payment_intent_id": payment_intent_id,
            "amount": amount,
            "currency": currency,
            "occurred_at": occurred_at,
        },
    )
    return [f"revenue +{amount} {currency} ({payment_intent_id})"] if created else []


def revenue_refund_record(
    *,
    project: Project,
    charge_id: str,
    amount_refunded_total: int,
    currency: str,
    occurred_at: dt.datetime,
    payment_intent_id: str = "",
    user_id: str = "",
) -> list[str]:
    """Appends the increment of a charge's cumulative refund since the last one recorded.

    `payment_intent_id` (the charge's) lets a purchase recorded later find this refund. `user_id` as
    for revenue_payment_record; without one, the purchase or the payment of the same intent names it.
    """
    with transaction.atomic():
        # Locking rows cannot stop two first refunds of a charge from both inserting (there is no
        # row yet); the payment's lock does, and orders this with purchase_record's read.
        _lock_payment(payment_intent_id or charge_id)
        # Lock the charge's refund rows, then sum them: FOR UPDATE cannot be combined with an aggregate.
        recorded = sum(
            RevenueEntry.objects.select_for_update()
            .filter(kind=RevenueEntry.Kind.REFUND, stripe_charge_id=charge_id)
            .values_list("amount", flat=True)
        )
        delta = amount_refunded_total - recorded
        if delta <= 0:
            return []
        RevenueEntry.objects.create(
            project=project,
            kind=RevenueEntry.Kind.REFUND,
            stripe_object_id=f"{charge_id}@{amount_refunded_total}",
            stripe_charge_id=charge_id,
            stripe_payment_intent_id=payment_intent_id,
            user_id=user_id or _payment_user(project=project, payment_intent_id=payment_intent_id),
            amount=delta,
            currency=currency,
            occurred_at=occurred_at,
        )
    return [f"refund -{delta} {currency} ({charge_id})"]
