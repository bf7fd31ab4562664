"""An illustrative billing history for the demo project, so that `make run` shows a full admin dashboard.

About 120 days of it, relative to the moment it is seeded: subscriptions in usd and eur (monthly,
quarterly and annual prices; active, past_due, trialing, canceled), the payments their periods imply
and some one-off purchases with refunds, webhook ledger rows, a finished reconciliation run with open
findings, and invoices whose hosted sessions went through the recovery funnel. Every Stripe id starts
with a `_demo_` marker (`sub_demo_`, `pi_demo_`, `evt_demo_`, `cs_demo_`...), so the rows are
recognisable as made up and a second seeding finds them and writes nothing.

Harmless to the running service (`make run` starts beat and a worker):
- no hosted session is left open, or expired/abandoned with an open invoice, so the recovery job never
  takes one up (it would call Stripe for a session that does not exist);
- the failed webhook events have used all their attempts (WEBHOOK_MAX_ATTEMPTS), so the ledger sweeper
  leaves them; the three received ones are payments the worker records within minutes, asking Stripe
  nothing;
- no BillingCustomer is linked to a Stripe customer (customer reconciliation ignores unlinked rows).
One thing a real reconciliation does see: a *full* run (the weekly job, or `manage.py reconcile --full`)
does not find the live demo subscriptions at Stripe and opens a `subscription_missing_at_stripe`
finding for each. That kind is never corrected unattended (apps/reconciliation/policy.py), so the
history stays as seeded; finance can ignore those findings.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import random
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.selectors import project_prices
from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
from apps.entitlements.grants import grant_create
from apps.entitlements.models import Purchase, RevenueEntry, SubscriptionRecord
from apps.entitlements.projection import entitlements_recompute
from apps.entitlements.services import subscription_apply_snapshot
from apps.projects.models import Project
from apps.reconciliation.models import Discrepancy, ReconciliationRun
from apps.recovery.models import RecoveryAttempt, RecoveryRun
from apps.webhooks.models import ProcessorEvent

MARKER = "sub_demo_"  # the ids of the demo subscriptions: present means seeded
ACTOR = "seed_demo_history"
HISTORY_DAYS = 120
SUBSCRIPTIONS = 40
SIGNUP_DAYS = 16 * 7
TRIAL_DAYS = 14
INVOICES = 13
# Fixed, so that every newcomer sees the same history (relative to the day it was seeded).
SEED = 13


@dataclass(frozen=True)
class Plan:
    price_id: str
    product: str
    currency: str
    unit_amount: int
    interval: str
    interval_count: int

    @property
    def months(self) -> int:
        return self.interval_count * (12 if self.interval == "year" else 1)


@dataclass(frozen=True)
class OneOff:
    price_id: str
    currency: str
    unit_amount: int


@dataclass
class DemoHistory:
    """What a seeding wrote, per kind of row; `created` is False when the history was already there."""

    created: bool
    counts: dict[str, int] = field(default_factory=dict)


def _ts(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Stripe's billing arithmetic: the same day of a later month, or that month's last day."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _ledger_user(user_id: str) -> dict[str, str]:
    """RevenueEntry.user_id where the model has it (newer schemas), else nothing."""
    names = {model_field.name for model_field in RevenueEntry._meta.get_fields()}
    return {"user_id": user_id} if "user_id" in names else {}


def _plans(project: Project) -> tuple[list[Plan], OneOff, OneOff]:
    """The recurring plans and one-off prices: the project's catalog prices where `seed_demo --catalog`
    made them (their features then entitle), else plain demo price ids that map to no feature."""
    catalog = {
        (
            view["currency"],
            (view["recurring"] or {}).get("interval"),
            (view["recurring"] or {}).get("interval_count"),
        ): (view)
        for view in project_prices(project_id=project.pk)
        if view["feature_code"] and view["unit_amount"] is not None
    }

    def plan(currency: str, amount: int, interval: str, count: int, name: str) -> Plan:
        found = catalog.get((currency, interval, count))
        if found is not None:
            assert found["unit_amount"] is not None
            return Plan(found["price_id"], found["product_id"], currency, found["unit_amount"], interval, count)
        return Plan(f"price_demo_{name}_{currency}", "prod_demo_pro", currency, amount, interval, count)

    plans = [
        plan("usd", 1500, "month", 1, "pro_monthly"),
        plan("usd", 4000, "month", 3, "pro_quarterly"),
        plan("usd", 15000, "year", 1, "pro_annual"),
        plan("eur", 1400, "month", 1, "pro_monthly"),
        plan("eur", 3800, "month", 3, "pro_quarterly"),
        plan("eur", 14000, "year", 1, "pro_annual"),
    ]
    once = catalog.get(("usd", None, None))
    usd_once = (
        OneOff(once["price_id"], "usd", once["unit_amount"] or 4900)
        if once
        else OneOff("price_demo_export_usd", "usd", 4900)
    )
    return plans, usd_once, OneOff("price_demo_export_eur", "eur", 4500)


@dataclass
class _Sub:
    """One demo subscription as planned: its snapshot, and the payments its periods imply."""

    number: int
    user_id: str
    plan: Plan
    quantity: int
    created: dt.datetime
    status: str
    period_start: dt.datetime
    period_end: dt.datetime
    ended_at: dt.datetime | None = None
    cancel_at_period_end: bool = False
    payments: list[dt.datetime] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"sub_demo_{self.number:03d}"

    @property
    def amount(self) -> int:
        return self.plan.unit_amount * self.quantity

    @property
    def last_change(self) -> dt.datetime:
        if self.ended_at is not None:
            return self.ended_at
        if self.status == "past_due":
            return self.period_start + dt.timedelta(hours=1)  # the renewal's payment failed
        return max(self.created, self.period_start)

    def snapshot(self, project: Project) -> dict[str, Any]:
        trial_end = self.created + dt.timedelta(days=TRIAL_DAYS) if self.status == "trialing" else None
        return {
            "id": self.id,
            "object": "subscription",
            "status": self.status,
            "customer": f"cus_demo_{self.number:03d}",
            "currency": self.plan.currency,
            "created": _ts(self.created),
            "start_date": _ts(self.created),
            "billing_cycle_anchor": _ts(trial_end or self.created),
            "trial_start": _ts(self.created) if trial_end else None,
            "trial_end": _ts(trial_end) if trial_end else None,
            "cancel_at_period_end": self.cancel_at_period_end,
            "canceled_at": _ts(self.ended_at) if self.ended_at else None,
            "ended_at": _ts(self.ended_at) if self.ended_at else None,
            "collection_method": "charge_automatically",
            "livemode": False,
            "metadata": {"project": project.slug, "user_id": self.user_id, "demo": "illustrative"},
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": f"si_demo_{self.number:03d}",
                        "object": "subscription_item",
                        "quantity": self.quantity,
                        "current_period_start": _ts(self.period_start),
                        "current_period_end": _ts(self.period_end),
                        "price": {
                            "id": self.plan.price_id,
                            "object": "price",
                            "product": self.plan.product,
                            "currency": self.plan.currency,
                            "unit_amount": self.plan.unit_amount,
                            "type": "recurring",
                            "recurring": {
                                "interval": self.plan.interval,
                                "interval_count": self.plan.interval_count,
                                "usage_type": "licensed",
                            },
                            "livemode": False,
                        },
                    }
                ],
            },
        }


# Which subscriptions end up in which state (by number): spread over plans and signup weeks.
PAST_DUE = frozenset({6, 18, 27, 33})  # monthly plans: a renewal failed
TRIALING = frozenset({37, 39})  # among the newest signups
CANCEL_AT_PERIOD_END = frozenset({14, 23})


def _plan_subscriptions(now: dt.datetime, plans: list[Plan], rng: random.Random) -> list[_Sub]:
    subs: list[_Sub] = []
    for number in range(1, SUBSCRIPTIONS + 1):
        plan = plans[number % len(plans)]
        days_ago = SIGNUP_DAYS - 1 - (number - 1) * (SIGNUP_DAYS - 1) // (SUBSCRIPTIONS - 1)
        created = now - dt.timedelta(days=days_ago, hours=rng.randint(1, 20), minutes=rng.randint(0, 59))
        quantity = 3 if number % 7 == 0 else 1  # a few team plans with seats
        if number in TRIALING:
            trial_end = created + dt.timedelta(days=TRIAL_DAYS)
            subs.append(_Sub(number, f"user_{number}", plan, quantity, created, "trialing", created, trial_end))
            continue
        ended_at = None
        if number % 5 == 0:  # churned, some weeks after signing up
            ended_at = created + (now - created) * rng.uniform(0.35, 0.95)
        until = ended_at or now
        # Billing periods from the signup, each paid at its start (the last one's renewal failed if past_due).
        boundaries = [created]
        while (following := _add_months(created, plan.months * len(boundaries))) <= until:
            boundaries.append(following)
        start = boundaries[-1]
        end = _add_months(created, plan.months * len(boundaries))
        status = "canceled" if ended_at else ("past_due" if number in PAST_DUE and len(boundaries) > 1 else "active")
        paid = boundaries[:-1] if status == "past_due" else boundaries
        subs.append(
            _Sub(
                number,
                f"user_{number}",
                plan,
                quantity,
                created,
                status,
                start,
                end,
                ended_at=ended_at,
                cancel_at_period_end=number in CANCEL_AT_PERIOD_END and status == "active",
                payments=[moment + dt.timedelta(minutes=2) for moment in paid],
            )
        )
    return subs


def _subscriptions_write(project: Project, subs: list[_Sub]) -> list[ProcessorEvent]:
    """Records each subscription through the service the webhooks use; returns the events that did it."""
    events: list[ProcessorEvent] = []
    for sub in subs:
        event_id = f"evt_demo_sub_{sub.number:03d}"
        kind = "deleted" if sub.ended_at else ("created" if sub.last_change == sub.created else "updated")
        data = sub.snapshot(project)
        changes, _ = subscription_apply_snapshot(
            project=project, user_id=sub.user_id, data=data, event_created=_ts(sub.last_change), event_id=event_id
        )
        events.append(
            _event(
                project,
                event_id,
                f"customer.subscription.{kind}",
                sub.last_change,
                data,
                sub.user_id,
                changes=changes,
            )
        )
    records = {r.stripe_subscription_id: r for r in SubscriptionRecord.objects.filter(project=project)}
    dated = []
    for sub in subs:
        record = records[sub.id]
        record.created_at = sub.created  # auto_now_add: set afterwards
        dated.append(record)
    SubscriptionRecord.objects.bulk_update(dated, ["created_at"])
    return events


def _event(
    project: Project,
    event_id: str,
    event_type: str,
    created: dt.datetime,
    data: dict[str, Any],
    user_id: str,
    *,
    status: str = ProcessorEvent.Status.PROCESSED,
    changes: list[str] | None = None,
) -> ProcessorEvent:
    payload = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": _ts(created),
        "api_version": settings.STRIPE_API_VERSION,
        "livemode": False,
        "data": {"object": data},
    }
    processed = status == ProcessorEvent.Status.PROCESSED
    return ProcessorEvent(
        stripe_event_id=event_id,
        type=event_type,
        api_version=settings.STRIPE_API_VERSION,
        created=created,
        payload=payload,
        raw_body=json.dumps(payload, separators=(",", ":")),
        headers={"Stripe-Signature": "t=0,v1=demo"},
        status=status,
        attempts=1 if processed else 0,
        processed_at=created + dt.timedelta(seconds=2) if processed else None,
        claimed_at=created + dt.timedelta(seconds=1) if processed else None,
        project=project,
        user_id=user_id,
        changes=changes or [],
    )


def _revenue_and_purchases(
    project: Project, now: dt.datetime, subs: list[_Sub], once_usd: OneOff, once_eur: OneOff
) -> tuple[list[RevenueEntry], list[Purchase]]:
    """Each subscription period's payment, a one-off purchase most days, and refunds of some of both."""
    since = now - dt.timedelta(days=HISTORY_DAYS)
    entries: list[RevenueEntry] = []
    purchases: list[Purchase] = []

    def pay(intent: str, user_id: str, amount: int, currency: str, at: dt.datetime) -> None:
        entries.append(
            RevenueEntry(
                project=project,
                kind=RevenueEntry.Kind.PAYMENT,
                stripe_object_id=intent,
                stripe_payment_intent_id=intent,
                amount=amount,
                currency=currency,
                occurred_at=at,
                **_ledger_user(user_id),
            )
        )

    def refund(charge: str, intent: str, user_id: str, amount: int, currency: str, at: dt.datetime) -> None:
        entries.append(
            RevenueEntry(
                project=project,
                kind=RevenueEntry.Kind.REFUND,
                stripe_object_id=f"{charge}@{amount}",  # the cumulative amount refunded, as the service keys it
                stripe_charge_id=charge,
                stripe_payment_intent_id=intent,
                amount=amount,
                currency=currency,
                occurred_at=at,
                **_ledger_user(user_id),
            )
        )

    for sub in subs:
        for index, paid_at in enumerate(sub.payments):
            if paid_at < since:
                continue
            intent = f"pi_demo_{sub.number:03d}_{index + 1:02d}"
            pay(intent, sub.user_id, sub.amount, sub.plan.currency, paid_at)
            if sub.number % 8 == 3 and index == 0:  # a goodwill partial refund of a first payment
                half = sub.amount // 2
                charge = f"ch_demo_{sub.number:03d}_{index + 1:02d}"
                refund(charge, intent, sub.user_id, half, sub.plan.currency, paid_at + dt.timedelta(days=3))

    number = 0
    for day in range(HISTORY_DAYS, 0, -1):
        for price, every in ((once_usd, 2), (once_eur, 3)):
            if day % every:
                continue
            number += 1
            paid_at = now - dt.timedelta(days=day, hours=-(number % 9) - 8)
            user_id = f"user_{number % 55 + 1}"
            intent = f"pi_demo_once_{number:03d}"
            refunded = number % 9 == 0 and paid_at + dt.timedelta(days=2) < now
            refunded_at = paid_at + dt.timedelta(days=2) if refunded else None
            purchases.append(
                Purchase(
                    project=project,
                    user_id=user_id,
                    stripe_price_id=price.price_id,
                    stripe_checkout_session_id=f"cs_demo_once_{number:03d}",
                    stripe_payment_intent_id=intent,
                    amount=price.unit_amount,
                    currency=price.currency,
                    amount_refunded=price.unit_amount if refunded else 0,
                    status=Purchase.Status.REFUNDED if refunded else Purchase.Status.PAID,
                    refunded_at=refunded_at,
                    valid_from=paid_at,
                )
            )
            pay(intent, user_id, price.unit_amount, price.currency, paid_at)
            if refunded_at is not None:
                charge = f"ch_demo_once_{number:03d}"
                refund(charge, intent, user_id, price.unit_amount, price.currency, refunded_at)
    return entries, purchases


def _purchase_features(project: Project, purchases: list[Purchase]) -> None:
    """The feature (and window) each purchase's price grants, as purchase_record would set them."""
    mapped = {view["price_id"]: view for view in project_prices(project_id=project.pk)}
    for purchase in purchases:
        view = mapped.get(purchase.stripe_price_id)
        if view is None or not view["feature_code"]:
            continue
        purchase.feature_code = view["feature_code"]
        days = view["purchase_duration_days"]
        purchase.valid_to = purchase.valid_from + dt.timedelta(days=days) if days else None


def _ledger_events(project: Project, now: dt.datetime, subs: list[_Sub]) -> list[ProcessorEvent]:
    """Three payments received minutes ago (the worker records them), two failures that gave up."""
    events: list[ProcessorEvent] = []
    for number in (1, 2, 3):
        user_id = f"user_{number * 4}"
        intent = {
            "id": f"pi_demo_pending_{number}",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 4900,
            "amount_received": 4900,
            "currency": "usd",
            "metadata": {"project": project.slug, "user_id": user_id, "demo": "illustrative"},
        }
        at = now - dt.timedelta(minutes=3 * number)
        events.append(
            _event(
                project,
                f"evt_demo_pending_{number}",
                "payment_intent.succeeded",
                at,
                intent,
                user_id,
                status=ProcessorEvent.Status.RECEIVED,
            )
        )
    max_attempts = int(getattr(settings, "WEBHOOK_MAX_ATTEMPTS", 20))
    past_due = [sub for sub in subs if sub.status == "past_due"]
    for number, hours_ago in ((1, 3), (2, 30)):
        sub = past_due[number % len(past_due)]
        at = now - dt.timedelta(hours=hours_ago + 48)
        invoice = {
            "id": f"in_demo_failed_{number}",
            "object": "invoice",
            "status": "open",
            "customer": f"cus_demo_{sub.number:03d}",
            "amount_due": sub.amount,
            "currency": sub.plan.currency,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub.id}},
            "metadata": {"project": project.slug, "user_id": sub.user_id, "demo": "illustrative"},
        }
        event = _event(
            project,
            f"evt_demo_failed_{number}",
            "invoice.payment_failed",
            at,
            invoice,
            sub.user_id,
            status=ProcessorEvent.Status.FAILED,
        )
        # Every attempt used: the ledger sweeper retries a failed row only while attempts are left.
        event.attempts = max_attempts
        event.claimed_at = now - dt.timedelta(hours=hours_ago)
        event.last_error = (
            "StripeUnavailable: the Stripe API did not answer within 10 s (demo: an illustrative failure)"
        )
        events.append(event)
    return events


def _reconciliation(project: Project, now: dt.datetime, subs: list[_Sub]) -> tuple[ReconciliationRun, int]:
    started = now - dt.timedelta(days=2, hours=3)
    run = ReconciliationRun.objects.create(
        project=project,
        trigger=ReconciliationRun.Trigger.SCHEDULED,
        mode=ReconciliationRun.Mode.FULL,
        status=ReconciliationRun.Status.SUCCEEDED,
        requested_by=ACTOR,
        heartbeat_at=started + dt.timedelta(minutes=4),
        finished_at=started + dt.timedelta(minutes=4),
        counts={
            "subscription": {"checked": len(subs), "drift_found": 1, "corrected": 0, "left_open": 1, "errors": 0},
            "payment_intent": {"checked": 180, "drift_found": 2, "corrected": 0, "left_open": 2, "errors": 0},
            "total": {"checked": 180 + len(subs), "drift_found": 3, "corrected": 0, "left_open": 3, "errors": 0},
        },
        summary={"note": "illustrative demo run (seed_demo_history)"},
        stripe_requests=9,
        db_writes=4,
        duration_ms=241_000,
    )
    ReconciliationRun.objects.filter(pk=run.pk).update(started_at=started)  # auto_now_add: set afterwards
    missing = next(s for s in subs if s.status == "active")
    paid = [s for s in subs if s.payments and s.status == "active"][-2:]
    findings = [
        Discrepancy(
            project=project,
            run=run,
            last_seen_run=run,
            kind="subscription_missing_at_stripe",
            object_type="subscription",
            stripe_id=missing.id,
            user_id=missing.user_id,
            local_value={"status": missing.status},
            stripe_value=None,
        ),
        *(
            Discrepancy(
                project=project,
                run=run,
                last_seen_run=run,
                kind="payment_intent_amount",
                object_type="payment_intent",
                stripe_id=f"pi_demo_{sub.number:03d}_01",
                user_id=sub.user_id,
                local_value={"revenue_amount": sub.amount},
                stripe_value={"amount_received": sub.amount - 100},
            )
            for sub in paid
        ),
    ]
    created = Discrepancy.objects.bulk_create(findings)
    Discrepancy.objects.filter(pk__in=[d.pk for d in created]).update(detected_at=started + dt.timedelta(minutes=3))
    return run, len(created)


@dataclass(frozen=True)
class _Fate:
    """What became of one invoice's hosted session: expired, abandoned, given attempts, paid."""

    abandoned: bool
    attempts: int
    paid: bool


# Expired and voided; abandoned and marked uncollectible; recovered (three attempts) yet uncollectible;
# recovered and paid. No session is left where the recovery job would take it up.
FATES = (
    *([_Fate(False, 0, False)] * 3),
    *([_Fate(True, 0, False)] * 3),
    *([_Fate(True, 3, False)] * 3),
    *([_Fate(True, 1, True)] * 2),
    *([_Fate(True, 2, True)] * 2),
)


def _funnel(project: Project, now: dt.datetime, rng: random.Random) -> dict[str, int]:
    """Invoices with one hosted session each, through the funnel; the paid ones in the revenue ledger."""
    invoices: list[tuple[Invoice, CheckoutSession, _Fate, dt.datetime]] = []
    for number, fate in enumerate(FATES[:INVOICES], start=1):
        user_id = f"user_{number + 2}"
        customer, _ = BillingCustomer.objects.get_or_create(project=project, user_id=user_id)
        currency = "usd" if number % 2 else "eur"
        total = rng.choice([2500, 4900, 7500, 12000])
        created = now - dt.timedelta(days=80 - number * 5, hours=rng.randint(0, 8))
        expired = created + dt.timedelta(hours=24)
        abandoned = expired + dt.timedelta(hours=1, minutes=5) if fate.abandoned else None
        last_attempt = None
        if abandoned is not None and fate.attempts:
            last_attempt = abandoned + dt.timedelta(days=fate.attempts - 1, minutes=10)
        settled = (last_attempt or abandoned or expired) + dt.timedelta(hours=5)
        invoice = Invoice.objects.create(
            project=project,
            customer=customer,
            user_id=user_id,
            currency=currency,
            status=(
                Invoice.Status.PAID
                if fate.paid
                else (Invoice.Status.UNCOLLECTIBLE if fate.abandoned else Invoice.Status.VOID)
            ),
            subtotal=total,
            total=total,
            due_at=created + dt.timedelta(days=7),
            created_by=ACTOR,
            stripe_payment_intent_id=f"pi_demo_inv_{number:02d}" if fate.paid else "",
            paid_at=settled if fate.paid else None,
            voided_at=settled if not fate.abandoned else None,
            marked_uncollectible_at=settled if fate.abandoned and not fate.paid else None,
        )
        session_id = f"cs_demo_inv_{number:02d}"
        session = CheckoutSession.objects.create(
            project=project,
            customer=customer,
            user_id=user_id,
            mode=CheckoutSession.Mode.PAYMENT,
            invoice=invoice,
            metadata={"project": project.slug, "user_id": user_id, "invoice": str(invoice.pk), "demo": "illustrative"},
            success_url="https://app.local/billing/paid",
            cancel_url="https://app.local/billing",
            status=CheckoutSession.Status.COMPLETED
            if fate.paid
            else (CheckoutSession.Status.ABANDONED if fate.abandoned else CheckoutSession.Status.EXPIRED),
            stripe_session_id=session_id,
            url=f"https://checkout.example.invalid/pay/{session_id}",
            expires_at=expired,
            customer_email=f"{user_id}@example.invalid",
            completed_at=settled if fate.paid else None,
            expired_at=expired,
            abandoned_at=abandoned,
            recovery_url=f"https://checkout.example.invalid/recover/{session_id}" if fate.attempts else "",
            recovery_url_expires_at=expired + dt.timedelta(days=30) if fate.attempts else None,
            recovery_attempts=fate.attempts,
            last_recovery_at=last_attempt,
            stripe_payment_intent_id=f"pi_demo_inv_{number:02d}" if fate.paid else "",
        )
        invoices.append((invoice, session, fate, created))
    Invoice.objects.bulk_update(
        [_dated(invoice, created) for invoice, _, _, created in invoices], ["created_at"]
    )  # auto_now_add: set afterwards
    CheckoutSession.objects.bulk_update(
        [_dated(session, created) for _, session, _, created in invoices], ["created_at"]
    )

    attempts: list[tuple[RecoveryAttempt, dt.datetime]] = []
    for _, session, fate, _ in invoices:
        assert fate.attempts == 0 or session.abandoned_at is not None
        for number in range(1, fate.attempts + 1):
            at = session.abandoned_at + dt.timedelta(days=number - 1, minutes=10) if session.abandoned_at else now
            run = RecoveryRun.objects.create(
                trigger=RecoveryRun.Trigger.SCHEDULED,
                status=RecoveryRun.Status.SUCCEEDED,
                started_at=at - dt.timedelta(seconds=5),
                finished_at=at + dt.timedelta(seconds=2),
                counts={"examined": 1, "expired": 0, "abandoned": 0, "recovered": 1, "notified": 1, "failed": 0},
            )
            attempt = RecoveryAttempt(
                session=session,
                run=run,
                number=number,
                method=RecoveryAttempt.Method.STRIPE_RECOVERY_URL,
                url=session.recovery_url,
                channel=RecoveryAttempt.Channel.EMAIL,
                notified_channels=["email"],
                # Delivered: a pending or failed notification would be retried, and an email sent.
                notification_status=RecoveryAttempt.NotificationStatus.SENT,
                notification_tries=1,
                notified_at=at + dt.timedelta(seconds=1),
            )
            attempts.append((attempt, at))
    created_attempts = RecoveryAttempt.objects.bulk_create([attempt for attempt, _ in attempts])
    RecoveryAttempt.objects.bulk_update(
        [_dated(attempt, at) for attempt, (_, at) in zip(created_attempts, attempts, strict=True)], ["created_at"]
    )

    payments = [
        RevenueEntry(
            project=project,
            kind=RevenueEntry.Kind.PAYMENT,
            stripe_object_id=invoice.stripe_payment_intent_id,
            stripe_payment_intent_id=invoice.stripe_payment_intent_id,
            amount=invoice.total,
            currency=invoice.currency,
            occurred_at=invoice.paid_at,
            **_ledger_user(invoice.user_id),
        )
        for invoice, _, fate, _ in invoices
        if fate.paid and invoice.paid_at is not None
    ]
    _ledger_append(payments)
    return {
        "invoices": len(invoices),
        "invoice sessions": len(invoices),
        "recovery attempts": len(created_attempts),
        "invoice payments": len(payments),
    }


def _ledger_append(entries: list[RevenueEntry]) -> None:
    """One save per entry, not bulk_create: the ledger's append path may keep derived rows (the
    dashboard's totals) in step with each entry, and bulk_create would bypass it. ~200 rows, once."""
    for entry in entries:
        entry.save()


def _dated(row: Any, created_at: dt.datetime) -> Any:
    row.created_at = created_at
    return row


def demo_history_seed(project: Project, *, now: dt.datetime | None = None) -> DemoHistory:
    """Fills `project` with the illustrative history once; a second call finds it and writes nothing."""
    if settings.IS_PRODUCTION:
        raise RuntimeError("the demo billing history is made up; it is never seeded in production")
    now = now or timezone.now()
    rng = random.Random(SEED)  # noqa: S311 - an illustration, not a secret
    with transaction.atomic():
        # Locked: two seedings at once would otherwise both find no history and both write it.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        if SubscriptionRecord.objects.filter(project=project, stripe_subscription_id__startswith=MARKER).exists():
            return DemoHistory(created=False)
        plans, once_usd, once_eur = _plans(project)
        subs = _plan_subscriptions(now, plans, rng)
        events = _subscriptions_write(project, subs)
        entries, purchases = _revenue_and_purchases(project, now, subs, once_usd, once_eur)
        _purchase_features(project, purchases)
        Purchase.objects.bulk_create(purchases)
        _ledger_append(entries)
        events += _ledger_events(project, now, subs)
        ProcessorEvent.objects.bulk_create(events)
        ProcessorEvent.objects.bulk_update(
            [_received(event) for event in ProcessorEvent.objects.filter(stripe_event_id__startswith="evt_demo_")],
            ["received_at"],
        )
        _, discrepancies = _reconciliation(project, now, subs)
        funnel = _funnel(project, now, rng)
        grants = [
            grant_create(
                project=project,
                user_id=user_id,
                feature_code="labs",
                granted_by=ACTOR,
                reason=reason,
                valid_to=valid_to,
            )
            for user_id, reason, valid_to in (
                ("user_2", "Beta tester: labs access for a month (demo)", now + dt.timedelta(days=30)),
                ("user_9", "Design partner: labs access until revoked (demo)", None),
            )
        ]
        users = sorted({sub.user_id for sub in subs} | {purchase.user_id for purchase in purchases})
        for user_id in users:
            entitlements_recompute(project=project, user_id=user_id)
    refunds = sum(1 for entry in entries if entry.kind == RevenueEntry.Kind.REFUND)
    return DemoHistory(
        created=True,
        counts={
            "subscriptions": len(subs),
            "revenue payments": len(entries) - refunds + funnel.pop("invoice payments"),
            "revenue refunds": refunds,
            "purchases": len(purchases),
            "webhook events": len(events),
            "reconciliation runs": 1,
            "discrepancies": discrepancies,
            **funnel,
            "grants": len(grants),
            "users recomputed": len(users),
        },
    )


def _received(event: ProcessorEvent) -> ProcessorEvent:
    """Received a second after Stripe created it (auto_now_add stamped the seeding's time)."""
    event.received_at = event.created + dt.timedelta(seconds=1)
    return event
