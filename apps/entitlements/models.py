"""The sources of entitlements, the projection computed from them, and the append-only money ledger.

Sources: SubscriptionRecord (from Stripe subscription snapshots), Purchase (paid one-time checkouts
and invoices), Grant (support staff). The Entitlement rows are a projection recomputed per
(project, user) from those sources: never edited by hand.
"""

from __future__ import annotations

import math
from typing import Any

from django.db import models, transaction

from apps.projects.models import Project


def subscription_items(data: Any) -> list[dict[str, Any]]:
    """The billed items of a Stripe subscription snapshot, narrowed to what MRR needs.

    One entry per item whose `price` is an expanded object: its id, currency, unit_amount (None for
    tiered or metered prices), recurring interval and interval_count (None when not recurring), and the
    item's quantity (Stripe's default 1 when absent). Values are kept as Stripe sent them: the MRR
    query applies the same casts and defaults it applied to `stripe_data`.
    """
    items = data.get("items") if isinstance(data, dict) else None
    rows = items.get("data") if isinstance(items, dict) else None
    result: list[dict[str, Any]] = []
    for item in rows if isinstance(rows, list) else []:
        price = item.get("price") if isinstance(item, dict) else None
        if not isinstance(price, dict):
            continue
        recurring = price.get("recurring")
        recurring = recurring if isinstance(recurring, dict) else {}
        result.append(
            {
                "price": price.get("id"),
                "currency": price.get("currency"),
                "unit_amount": price.get("unit_amount"),
                "interval": recurring.get("interval"),
                "interval_count": recurring.get("interval_count"),
                "quantity": item.get("quantity"),
            }
        )
    return result


# A price's amount per month is amount x MONTHS_NUMERATOR[interval] / (12 x interval_count): a week is
# 52/12 of a month (Stripe's own MRR convention), a day 365/12, a year 1/12.
MONTHS_NUMERATOR = {"day": 365, "week": 52, "month": 12, "year": 1}


def subscription_mrr(items: list[dict[str, Any]]) -> tuple[str, int, int, int]:
    """(currency, numerator, denominator, items counted): the subscription's exact monthly amount.

    The monthly amount of every item with a fixed unit_amount and a recurring interval, summed as one
    fraction numerator/denominator with denominator 12 x lcm(interval_counts), so that it stays exact
    (three quarterly items of 1000 are 1000 a month, rounded once when a currency's total is). The MRR
    panel then sums plain integer columns per (currency, denominator) through an index instead of
    unnesting JSON. Stripe bills one subscription in one currency: items in another currency than the
    first counted one are not counted, nor tiered or metered items. ("", 0, 12, 0) when nothing is.
    """
    counted = [
        item for item in items if isinstance(item.get("unit_amount"), int) and item.get("interval") in MONTHS_NUMERATOR
    ]
    currency = str(counted[0].get("currency") or "").lower() if counted else ""
    counted = [item for item in counted if str(item.get("currency") or "").lower() == currency]
    if not counted:
        return ("", 0, 12, 0)
    denominator = 12 * math.lcm(*(max(int(item.get("interval_count") or 1), 1) for item in counted))
    numerator = sum(
        int(item["unit_amount"])
        * int(item.get("quantity") or 1)
        * MONTHS_NUMERATOR[str(item["interval"])]
        * (denominator // (12 * max(int(item.get("interval_count") or 1), 1)))
        for item in counted
    )
    return (currency, numerator, denominator, len(counted))


class SubscriptionRecord(models.Model):
    """A Stripe subscription as the newest event we applied describes it."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="subscriptions")
    user_id = models.CharField(max_length=255)
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=32)
    price_ids = models.JSONField(default=list)
    # From the subscription *items*: the current API keeps the period there, not on the subscription.
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # When the subscription last became past_due (the grace period runs from here).
    past_due_since = models.DateTimeField(null=True, blank=True)
    # The newest event applied: an older one must never overwrite this state.
    last_event_created = models.BigIntegerField(default=0)
    last_event_id = models.CharField(max_length=255, blank=True)
    stripe_data = models.JSONField(default=dict)
    # subscription_items(stripe_data), kept by save(): the MRR panel reads this small inline value
    # instead of decompressing and parsing each row's whole snapshot (~1.5 s at 100,000 rows).
    items = models.JSONField(default=list)
    # subscription_mrr(items), kept by save(): the monthly amount as an exact fraction, in columns
    # the MRR panel sums without reading JSON.
    mrr_currency = models.CharField(max_length=3, blank=True, default="")
    mrr_numerator = models.BigIntegerField(default=0)
    mrr_denominator = models.PositiveIntegerField(default=12)
    mrr_items = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "user_id"]),
            # Covering: subscriptions by status and MRR are index-only scans (bench/admin_dashboard.py).
            models.Index(
                fields=["project", "status"],
                include=["mrr_currency", "mrr_numerator", "mrr_denominator", "mrr_items"],
                name="subscription_project_status",
            ),
            # New and churned per week: range scans over one project's dates.
            models.Index(fields=["project", "created_at"], name="subscription_project_created"),
            models.Index(fields=["project", "ended_at"], name="subscription_project_ended"),
        ]

    def __str__(self) -> str:
        return self.stripe_subscription_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Derived here, not by each writer, so no path that saves a snapshot can leave `items` stale.
        self.items = subscription_items(self.stripe_data)
        self.mrr_currency, self.mrr_numerator, self.mrr_denominator, self.mrr_items = subscription_mrr(self.items)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "stripe_data" in update_fields:
            kwargs["update_fields"] = list(dict.fromkeys([*update_fields, "items", *DERIVED_MRR_FIELDS]))
        super().save(*args, **kwargs)


DERIVED_MRR_FIELDS = ("mrr_currency", "mrr_numerator", "mrr_denominator", "mrr_items")


class Purchase(models.Model):
    """A paid one-time purchase; it entitles for the price's duration, or for life. A full refund ends it."""

    class Status(models.TextChoices):
        PAID = "paid"
        REFUNDED = "refunded"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="purchases")
    user_id = models.CharField(max_length=255)
    stripe_price_id = models.CharField(max_length=255)
    feature_code = models.CharField(max_length=64, blank=True)
    stripe_checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_invoice_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # A paid line of one of our own invoices (apps/checkout): one purchase per line with a feature code.
    invoice_line = models.OneToOneField(
        "checkout.InvoiceLine", on_delete=models.PROTECT, null=True, blank=True, related_name="purchase"
    )
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    amount_refunded = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PAID)
    refunded_at = models.DateTimeField(null=True, blank=True)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["project", "user_id"])]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.user_id}:{self.feature_code or self.stripe_price_id}"


class Grant(models.Model):
    """A manual entitlement from support staff, within a window; a revoke ends it."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="grants")
    user_id = models.CharField(max_length=255)
    feature_code = models.CharField(max_length=64)
    granted_by = models.CharField(max_length=255)
    reason = models.TextField()
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=255, blank=True)
    revoke_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "user_id", "feature_code"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=models.F("valid_from")),
                name="grant_window_ends_after_it_starts",
            )
        ]

    def __str__(self) -> str:
        return f"grant #{self.pk} {self.project.slug}/{self.user_id}:{self.feature_code}"


class Entitlement(models.Model):
    """The projection: one validity window per source, per (project, user, feature)."""

    class Source(models.TextChoices):
        SUBSCRIPTION = "subscription"
        PURCHASE = "purchase"
        GRANT = "grant"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="entitlements")
    user_id = models.CharField(max_length=255)
    feature_code = models.CharField(max_length=64)
    source = models.CharField(max_length=16, choices=Source.choices)
    source_id = models.BigIntegerField()
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["feature_code", "valid_from"]
        indexes = [models.Index(fields=["project", "user_id", "feature_code"])]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user_id", "source", "source_id", "feature_code"], name="entitlement_unique_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.user_id}:{self.feature_code} ({self.source} #{self.source_id})"


class RevenueEntry(models.Model):
    """Append-only money ledger: one row per payment and per refund increment, in minor units."""

    class Kind(models.TextChoices):
        PAYMENT = "payment"
        REFUND = "refund"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="revenue_entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Whose money: the payment's purchase, else the user the event was routed to (its metadata or its
    # customer, which covers subscription invoices). "" when nothing names one (a payment of no user).
    user_id = models.CharField(max_length=255, blank=True, default="")
    # The payment intent for payments; "<charge>@<cumulative amount refunded>" for refunds.
    stripe_object_id = models.CharField(max_length=255)
    stripe_charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    # Refund rows carry their charge's payment intent, so that a purchase recorded after its refund
    # was seen (Stripe does not order deliveries) finds it: see services.purchase_record.
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "stripe_object_id"], name="revenue_entry_unique_object")]
        indexes = [
            # Covering: revenue per day reads only these columns, so it is an index-only scan
            # (365 days of 1,000,000 rows: 417 -> 192 ms in bench/admin_dashboard.py).
            models.Index(
                fields=["project", "occurred_at"],
                include=["kind", "currency", "amount"],
                name="revenue_entry_project_day",
            ),
            # One customer's payments and refunds (the admin list's user filter, the customer page).
            models.Index(fields=["project", "user_id"], name="revenue_entry_project_user"),
        ]
        verbose_name_plural = "revenue entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The daily totals move in the same transaction as the entry (revenue_days.py): every path
        # that records money goes through save() (create, get_or_create), so none can skip them.
        # The ledger is append-only: an entry is never updated, so only an insert adds to a day.
        adding = self._state.adding
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            if adding:
                from apps.entitlements.revenue_days import revenue_day_add

                revenue_day_add(self)


class RevenueDay(models.Model):
    """The revenue ledger summed per project, UTC day and currency: what the dashboard charts.

    Kept by RevenueEntry.save() in the entry's own transaction (an upsert adding the amount), so it
    always equals the sum of the ledger; `manage.py rebuild_revenue_days` recomputes it from the
    ledger (after a bulk load that bypassed save()). Reading 730 rows instead of aggregating 500,000
    is what keeps a year's chart fast (bench/admin_dashboard.py).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    currency = models.CharField(max_length=3)
    gross = models.BigIntegerField(default=0)  # payments, minor units
    refunded = models.BigIntegerField(default=0)  # refunds, minor units
    entries = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "day", "currency"], name="revenue_day_unique"),
        ]
        verbose_name = "revenue day"

    def __str__(self) -> str:
        return f"{self.day} {self.currency}: {self.gross} - {self.refunded}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise RuntimeError("revenue entries are append-only; record a new entry instead")
        super().save(*args, **kwargs)


# Outbound notifications (endpoints, outbox, deliveries) are models of this app, kept in their own
# module; importing them here registers them when the app loads (and re-exports them).
from apps.entitlements.notifications.models import Delivery as Delivery  # noqa: E402
from apps.entitlements.notifications.models import DeliveryAttempt as DeliveryAttempt  # noqa: E402
from apps.entitlements.notifications.models import EntitlementVersion as EntitlementVersion  # noqa: E402
from apps.entitlements.notifications.models import Notification as Notification  # noqa: E402
from apps.entitlements.notifications.models import NotificationEndpoint as NotificationEndpoint  # noqa: E402
