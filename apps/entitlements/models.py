"""The sources of entitlements, the projection computed from them, and the append-only money ledger.

Sources: SubscriptionRecord (from Stripe subscription snapshots), Purchase (paid one-time checkouts
and invoices), Grant (support staff). The Entitlement rows are a projection recomputed per
(project, user) from those sources: never edited by hand.
"""

from __future__ import annotations

from typing import Any

from django.db import models

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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["project", "user_id"]), models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return self.stripe_subscription_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Derived here, not by each writer, so no path that saves a snapshot can leave `items` stale.
        self.items = subscription_items(self.stripe_data)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "stripe_data" in update_fields and "items" not in update_fields:
            kwargs["update_fields"] = [*update_fields, "items"]
        super().save(*args, **kwargs)


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
        if self.pk is not None:
            raise RuntimeError("revenue entries are append-only; record a new entry instead")
        super().save(*args, **kwargs)
