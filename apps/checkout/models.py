"""Stripe customers per (project, user) and the checkout and portal sessions we asked Stripe for."""

from __future__ import annotations

from django.db import models

from apps.projects.models import Project


class BillingCustomer(models.Model):
    """One Stripe customer per (project, user_id). The row comes first and its id keys the Stripe
    create, so concurrent first requests share one row and one Stripe customer."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="customers")
    user_id = models.CharField(max_length=255)
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user_id"], name="customer_unique_user_per_project")]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.user_id}"


class CheckoutSession(models.Model):
    class Mode(models.TextChoices):
        SUBSCRIPTION = "subscription"
        PAYMENT = "payment"

    class Status(models.TextChoices):
        CREATING = "creating"  # our row exists, Stripe has not answered yet
        OPEN = "open"
        COMPLETE = "complete"
        EXPIRED = "expired"
        FAILED = "failed"  # Stripe refused or was unavailable; see last_error

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="checkout_sessions")
    customer = models.ForeignKey(BillingCustomer, on_delete=models.PROTECT, related_name="checkout_sessions")
    user_id = models.CharField(max_length=255)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    stripe_price_id = models.CharField(max_length=255)
    quantity = models.PositiveIntegerField(default=1)
    trial_days = models.PositiveIntegerField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    success_url = models.URLField(max_length=2000)
    cancel_url = models.URLField(max_length=2000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATING)
    stripe_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    url = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Learnt from webhooks: the payment intent (checkout.session.completed, or payment_intent.* events
    # carrying our `checkout_session` metadata) and its latest failed attempt, where support looks.
    # A failure grants and revokes nothing; the status stays what Checkout says.
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    last_payment_error_code = models.CharField(max_length=255, blank=True)
    last_payment_error_message = models.TextField(blank=True)
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "user_id"]), models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return self.stripe_session_id or f"checkout #{self.pk}"


class PortalSession(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="portal_sessions")
    customer = models.ForeignKey(BillingCustomer, on_delete=models.PROTECT, related_name="portal_sessions")
    return_url = models.URLField(max_length=2000)
    stripe_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    url = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.stripe_session_id or f"portal #{self.pk}"
