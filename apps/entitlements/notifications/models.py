"""Outbound notifications to the micro-apps: endpoints, the transactional outbox, deliveries and their log.

- NotificationEndpoint: where an App wants to be told (URL, event types, enabled), with the signing
  secret and, during a rotation, the previous secret until its overlap window ends.
- Notification: one row per thing that happened (`entitlements.updated`, ...), written in the same
  transaction as the change that causes it (apps.entitlements.notifications.outbox), so that no change
  commits without its notification and no notification survives a rollback.
- Delivery: one row per (notification, endpoint), fanned out in that same transaction; the queue the
  fulfillment worker claims with FOR UPDATE SKIP LOCKED.
- DeliveryAttempt: the log of every HTTP attempt (status code, duration, a truncated response body).
- EntitlementVersion: the per-(project, user) version carried by `entitlements.updated`; it only grows.

These live in the entitlements app (apps/entitlements/models.py imports this module) because the
projection is what emits them; the endpoints belong to an App of apps.projects.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from apps.projects.models import App, Project

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def secret_new() -> str:
    """A signing secret: 256 random bits, with Stripe's prefix so that people recognise what it is."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def notification_id_new() -> str:
    return "ntf_" + secrets.token_hex(12)


class NotificationEndpoint(models.Model):
    """A URL of an App's that receives signed notifications of the types it asks for (all when empty)."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="notification_endpoints")
    url = models.URLField(max_length=2000)
    event_types = models.JSONField(
        default=list, blank=True, help_text="The notification types sent here; empty means every type."
    )
    enabled = models.BooleanField(default=True)
    # Kept in clear: the service must sign with it (as Stripe keeps webhook secrets). Shown once.
    secret = models.CharField(max_length=100, default=secret_new)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # The first failed attempt of the current run of failures; cleared by any success. An endpoint
    # failing for FULFILLMENT_DISABLE_AFTER_SECONDS is disabled and its app's owners see why.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("app_id", "id")
        verbose_name = "notification endpoint"

    def __str__(self) -> str:
        return f"{self.app} → {self.url}"

    def wants(self, notification_type: str) -> bool:
        return not self.event_types or notification_type in self.event_types


class EntitlementVersion(models.Model):
    """The version of a (project, user)'s entitlements: +1 at every change of the projection."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)
    version = models.BigIntegerField(default=0)

    class Meta:
        constraints = (models.UniqueConstraint(fields=("project", "user_id"), name="entitlement_version_user"),)

    def __str__(self) -> str:
        return f"{self.user_id} v{self.version}"


class Notification(models.Model):
    """The outbox: what is sent, exactly as it is sent (the envelope's `data`), under a stable id."""

    id = models.CharField(primary_key=True, max_length=40, default=notification_id_new, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="notifications")
    type = models.CharField(max_length=64)
    # The user it is about, when it is about one: the customer page and filters read it.
    user_id = models.CharField(max_length=255, blank=True, default="")
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at",)
        indexes = (
            models.Index(fields=("project", "created_at"), name="notification_project_created"),
            models.Index(fields=("project", "user_id", "created_at"), name="notification_user"),
        )

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    def envelope(self) -> dict[str, object]:
        """The body every endpoint receives: id, type, created (unix seconds, as Stripe), project_id, data."""
        return {
            "id": self.id,
            "type": self.type,
            "created": int(self.created_at.timestamp()),
            "project_id": self.project_id,
            "data": self.data,
        }


class Delivery(models.Model):
    """One notification to one endpoint: the unit the worker claims, sends and retries."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(NotificationEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the worker may take it next: now for a new one, after the backoff for a retry, and the end
    # of the lease while a worker holds it (a worker killed mid-send leaves it to be taken again).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at",)
        verbose_name_plural = "deliveries"
        constraints = (
            models.UniqueConstraint(fields=("notification", "endpoint"), name="delivery_notification_endpoint"),
        )
        indexes = (
            # The worker's claim: pending rows due now, oldest first. Partial, so it stays small.
            models.Index(
                fields=("next_attempt_at",),
                name="delivery_pending_due",
                condition=models.Q(status="pending"),
            ),
        )

    def __str__(self) -> str:
        return f"{self.notification_id} → endpoint {self.endpoint_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP attempt of a delivery, kept for the app's owners and support."""

    RESPONSE_BODY_LIMIT = 1000

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ("delivery_id", "number")

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
