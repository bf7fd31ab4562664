"""The sources of entitlements, the projection computed from them, and the append-only money ledger.

Sources: SubscriptionRecord (from Stripe subscription snapshots), Purchase (paid one-time checkouts
and invoices), Grant (support staff). The Entitlement rows are a projection recomputed per
(project, user) from those sources: never edited by hand.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from apps.projects.models import Project


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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["project", "user_id"]), models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return self.stripe_subscription_id


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
        indexes = [models.Index(fields=["project", "occurred_at"])]
        verbose_name_plural = "revenue entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise RuntimeError("revenue entries are append-only; record a new entry instead")
        super().save(*args, **kwargs)
