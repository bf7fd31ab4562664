"""Reads for the customer page: which user a search names, and everything about that user."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
from apps.common.models import AuditLog
from apps.common.stripe_gateway.credentials import credentials_resolver
from apps.common.stripe_gateway.errors import StripeUnavailable
from apps.entitlements.models import Grant, Purchase, SubscriptionRecord
from apps.entitlements.selectors import entitlement_list
from apps.projects.models import Project
from apps.reconciliation.models import Discrepancy
from apps.webhooks.models import ProcessorEvent

# A customer with years of renewals has thousands of events: the page shows the latest ones, in
# order, and links to the full filtered ledger.
MAX_EVENTS = 200
MAX_AUDIT = 200


def customer_user_ids(
    *, project: Project, user_id: str = "", email: str = "", stripe_customer_id: str = ""
) -> list[str]:
    """The project's user ids a search names: one key of the three, matched exactly (email case-blind)."""
    if user_id:
        known = (
            BillingCustomer.objects.filter(project=project, user_id=user_id).exists()
            or SubscriptionRecord.objects.filter(project=project, user_id=user_id).exists()
            or Purchase.objects.filter(project=project, user_id=user_id).exists()
            or Grant.objects.filter(project=project, user_id=user_id).exists()
            or ProcessorEvent.objects.filter(project=project, user_id=user_id).exists()
        )
        return [user_id] if known else []
    if email:
        # The only address the service stores is the one Stripe collected on a hosted session.
        rows = CheckoutSession.objects.filter(project=project, customer_email__iexact=email)
        return sorted(set(rows.values_list("user_id", flat=True)))
    if stripe_customer_id:
        ids = set(
            BillingCustomer.objects.filter(project=project, stripe_customer_id=stripe_customer_id).values_list(
                "user_id", flat=True
            )
        )
        ids |= set(
            SubscriptionRecord.objects.filter(project=project, stripe_customer_id=stripe_customer_id).values_list(
                "user_id", flat=True
            )
        )
        return sorted(ids)
    return []


def stripe_dashboard_url(*, project: Project, stripe_customer_id: str) -> str:
    # A test key's objects live under /test/ in the dashboard, a live key's at the root. The key is
    # the project's (its own account's when it has one), as the gateway resolves it.
    try:
        key = credentials_resolver().secret_key(project_slug=project.slug)
    except StripeUnavailable:
        key = ""  # no key configured: a development setup, so test mode
    live = key.startswith(("sk_live_", "rk_live_"))
    return f"https://dashboard.stripe.com/{'' if live else 'test/'}customers/{stripe_customer_id}"


@dataclass
class SubscriptionRow:
    record: SubscriptionRecord
    grace_until: dt.datetime | None


@dataclass
class CustomerOverview:
    project: Project
    user_id: str
    customer: BillingCustomer | None
    stripe_customer_ids: list[str]
    dashboard_urls: list[tuple[str, str]]
    subscriptions: list[SubscriptionRow]
    purchases: list[Purchase]
    grants: list[Grant]
    entitlements: list[dict[str, Any]]
    invoices: list[Invoice]
    sessions: list[CheckoutSession]
    events: list[ProcessorEvent]
    events_total: int
    audit: list[AuditLog]
    discrepancies: list[Discrepancy] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)


def customer_overview(*, project: Project, user_id: str) -> CustomerOverview:
    customer = BillingCustomer.objects.filter(project=project, user_id=user_id).first()
    records = list(SubscriptionRecord.objects.filter(project=project, user_id=user_id).order_by("-created_at"))
    grace = dt.timedelta(days=project.past_due_grace_days)
    subscriptions = [
        SubscriptionRow(
            record=record,
            grace_until=record.past_due_since + grace
            if record.status == "past_due" and record.past_due_since is not None
            else None,
        )
        for record in records
    ]
    customer_ids = sorted(
        {record.stripe_customer_id for record in records if record.stripe_customer_id}
        | ({customer.stripe_customer_id} if customer is not None and customer.stripe_customer_id else set())
    )
    purchases = list(Purchase.objects.filter(project=project, user_id=user_id).order_by("-created_at"))
    grants = list(Grant.objects.filter(project=project, user_id=user_id).order_by("-created_at"))
    invoices = list(Invoice.objects.filter(project=project, user_id=user_id).order_by("-created_at"))
    sessions = list(
        CheckoutSession.objects.filter(project=project, user_id=user_id).select_related("invoice").order_by("-id")
    )
    discrepancies = list(Discrepancy.objects.filter(project=project, user_id=user_id).order_by("-detected_at"))

    events_qs = ProcessorEvent.objects.filter(project=project, user_id=user_id)
    latest = list(events_qs.order_by("-created", "-id")[:MAX_EVENTS])
    events = latest[::-1]  # shown oldest first: the order in which they changed things

    # Services name what they audit "<kind> #<pk>" (grants, invoices, sessions, discrepancies) or
    # "<object type>:<stripe id>" (reconciliation's corrections).
    targets = (
        [f"grant #{g.pk}" for g in grants]
        + [f"invoice #{i.pk}" for i in invoices]
        + [f"checkout session #{s.pk}" for s in sessions]
        + [f"discrepancy #{d.pk}" for d in discrepancies]
        + [f"subscription:{r.stripe_subscription_id}" for r in records]
    )
    audit = list(
        AuditLog.objects.filter(Q(project=project) | Q(project__isnull=True), target__in=targets).order_by(
            "-occurred_at", "-id"
        )[:MAX_AUDIT]
    )
    emails = sorted({s.customer_email for s in sessions if s.customer_email})
    return CustomerOverview(
        project=project,
        user_id=user_id,
        customer=customer,
        stripe_customer_ids=customer_ids,
        dashboard_urls=[(cid, stripe_dashboard_url(project=project, stripe_customer_id=cid)) for cid in customer_ids],
        subscriptions=subscriptions,
        purchases=purchases,
        grants=grants,
        entitlements=entitlement_list(project_id=project.pk, user_id=user_id),
        invoices=invoices,
        sessions=sessions,
        events=events,
        events_total=events_qs.count(),
        audit=audit,
        discrepancies=discrepancies,
        emails=emails,
    )
