from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from apps.projects.redirects import validate_redirect_prefix


class Scope(models.TextChoices):
    ENTITLEMENTS_READ = "entitlements:read", "Read entitlements"
    CHECKOUT_WRITE = "checkout:write", "Create checkout and portal sessions"
    BILLING_READ = "billing:read", "Read invoices, sessions and metrics"
    BILLING_WRITE = "billing:write", "Create invoices and hosted sessions"
    CATALOG_WRITE = "catalog:write", "Change the catalog and product configuration"
    ADMIN_WRITE = "admin:write", "Grant and revoke entitlements"
    OPS = "ops", "Replays and reconciliation"


ALL_SCOPES: frozenset[str] = frozenset(Scope.values)


def validate_scopes(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValidationError("Scopes must be a list of strings.")
    unknown = sorted(set(value) - ALL_SCOPES)
    if unknown:
        raise ValidationError(f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(sorted(ALL_SCOPES))}.")


def validate_redirect_prefixes(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValidationError("Allowed redirect prefixes must be a list of URLs.")
    for prefix in value:
        validate_redirect_prefix(prefix)


class Project(models.Model):
    """A tenant: one product line whose micro-apps share customers, catalog and entitlements."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(
        max_length=64, unique=True, help_text="Also the `project` metadata value on Stripe objects."
    )
    allowed_redirect_prefixes = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_redirect_prefixes],
        help_text="URL prefixes that checkout success/cancel and portal return URLs must start with.",
    )
    active = models.BooleanField(default=True)
    feature_codes = models.JSONField(
        default=list,
        blank=True,
        help_text="Feature codes grants may use besides those mapped to the catalog's prices.",
    )
    past_due_grace_days = models.PositiveIntegerField(
        default=3, help_text="Days a past_due subscription keeps entitling before payment is retried to the end."
    )
    revoke_on_partial_refund = models.BooleanField(
        default=False, help_text="End a purchase's entitlement on a partial refund too (a full refund always does)."
    )
    allow_multiple_subscriptions = models.BooleanField(
        default=False,
        help_text=(
            "Let a user start a subscription checkout for a feature an active subscription already gives "
            "(off: such a checkout is refused with 409 and a pointer to the customer portal)."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class App(models.Model):
    """A micro-app that calls the service. Its API keys act with its scopes within its project."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="apps")
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    scopes = models.JSONField(default=list, blank=True, validators=[validate_scopes])
    rate_limit = models.CharField(
        max_length=32,
        blank=True,
        help_text="Requests per key, such as 600/min; blank uses the service default (API_RATE_LIMIT).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="app_unique_name_per_project")]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.name}"


class ApiKey(models.Model):
    """An API key, stored as its visible lookup prefix and an HMAC of the whole key, never the key."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="keys")
    label = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Written at most once per API_KEY_TOUCH_SECONDS per key, not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"bk_{self.prefix}_…"
