"""Stripe customers per (project, user), the checkout and portal sessions we asked Stripe for, and invoices."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
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
        COMPLETED = "completed"
        EXPIRED = "expired"
        # Expired unpaid for longer than HOSTED_SESSION_ABANDON_AFTER_SECONDS: recovery takes it up.
        ABANDONED = "abandoned"
        # Replaced by a new session for the same invoice (an operator's regenerate, or recovery).
        REGENERATED = "regenerated"
        FAILED = "failed"  # Stripe refused or was unavailable; see last_error

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="checkout_sessions")
    customer = models.ForeignKey(BillingCustomer, on_delete=models.PROTECT, related_name="checkout_sessions")
    user_id = models.CharField(max_length=255)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    # A price checkout names a Stripe price; an invoice's hosted session has price_data lines instead.
    stripe_price_id = models.CharField(max_length=255, blank=True)
    invoice = models.ForeignKey(
        "checkout.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    regenerated_from = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="regenerated_by"
    )
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
    # The hosted-session lifecycle (invoice sessions): when each state was reached, the address Stripe
    # collected, Stripe's own recovery link of an expired session, and our recovery attempts.
    customer_email = models.EmailField(max_length=254, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    abandoned_at = models.DateTimeField(null=True, blank=True)
    recovery_url = models.TextField(blank=True)
    recovery_url_expires_at = models.DateTimeField(null=True, blank=True)
    recovery_attempts = models.PositiveSmallIntegerField(default=0)
    last_recovery_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Also the optimistic-lock token of a regenerate: every write of the row moves it.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "user_id"]),
            models.Index(fields=["status", "expires_at"]),
            models.Index(fields=["status", "expired_at"], name="checkout_sess_expired"),
            models.Index(fields=["project", "status", "-created_at"], name="checkout_sess_proj_status"),
        ]

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


# Stripe's largest amount for a Checkout line or charge, in minor units (8 digits).
AMOUNT_MAX = 99_999_999


class Invoice(models.Model):
    """A one-off bill for a user, built from the project's configured products and paid on a hosted
    Checkout page. Amounts are integers in minor units of `currency`, fixed when it is created.

    Lifecycle: draft (created) -> open (a hosted session was created for it: the amount is now at
    Stripe) -> paid; draft/open -> void; open -> uncollectible -> paid or void. Anything else is 409.
    """

    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAID = "paid"
        VOID = "void"
        UNCOLLECTIBLE = "uncollectible"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="invoices")
    customer = models.ForeignKey(BillingCustomer, on_delete=models.PROTECT, related_name="invoices")
    user_id = models.CharField(max_length=255)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    subtotal = models.BigIntegerField(validators=[MinValueValidator(0)])
    total = models.BigIntegerField(validators=[MinValueValidator(0), MaxValueValidator(AMOUNT_MAX)])
    due_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=255, blank=True)
    # The payment that paid it (checkout.session.completed): a refund of it ends its purchases.
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    marked_uncollectible_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "status", "-created_at"], name="invoice_project_status"),
            models.Index(fields=["project", "user_id"], name="invoice_project_user"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(total__gte=0), name="invoice_total_not_negative"),
            models.CheckConstraint(
                condition=models.Q(status__in=["draft", "open", "paid", "void", "uncollectible"]),
                name="invoice_status_known",
            ),
        ]

    def __str__(self) -> str:
        return f"invoice #{self.pk} {self.total} {self.currency} ({self.status})"


class InvoiceLine(models.Model):
    """One configured product on an invoice, with the arithmetic that priced it.

    `unit_amount` is the price of one unit after options, add-ons and the plan; `line_total` is
    `unit_amount * quantity`. `breakdown` lists every component and step (see
    apps/checkout/invoices/pricing.py) so that finance can redo the sum by hand. The product's name,
    feature code and purchase duration are copied: later catalog edits do not rewrite a bill.
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    product = models.ForeignKey("catalog.CatalogProduct", on_delete=models.PROTECT, related_name="invoice_lines")
    product_name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(10_000)])
    base_amount = models.BigIntegerField()
    unit_amount = models.BigIntegerField(validators=[MinValueValidator(0), MaxValueValidator(AMOUNT_MAX)])
    line_total = models.BigIntegerField(validators=[MinValueValidator(0), MaxValueValidator(AMOUNT_MAX)])
    options = models.JSONField(default=list, blank=True)
    add_ons = models.JSONField(default=list, blank=True)
    plan = models.JSONField(null=True, blank=True)
    custom_fields = models.JSONField(default=dict, blank=True)
    breakdown = models.JSONField(default=dict)
    feature_code = models.CharField(max_length=64, blank=True)
    purchase_duration_days = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_name} = {self.line_total}"
