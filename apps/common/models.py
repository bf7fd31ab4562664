from __future__ import annotations

from typing import Any

from django.db import models

from apps.projects.models import Project


class Heartbeat(models.Model):
    """The last time a background component proved it was alive (the worker runs a beat task).

    Exported on /metrics as a timestamp, so an alert can fire when the worker or beat stops.
    """

    name = models.CharField(max_length=64, unique=True)
    last_seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen_at.isoformat()}"


class IdempotencyRecord(models.Model):
    """The first answer to a POST that carried an Idempotency-Key, replayed to its retries.

    A row with no status is a request still in progress. Failures (4xx raised as exceptions, 5xx)
    are not kept, so that a corrected or later retry runs afresh. Rows older than a day are purged.
    """

    project_id = models.BigIntegerField()
    key = models.CharField(max_length=255)
    method_path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project_id", "key"], name="idempotency_unique_key_per_project")]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.key}"


class AuditLog(models.Model):
    """Append-only: who did what, when, why, with the state before and after.

    Written by several apps (grants and revokes in entitlements, replays in webhooks), through
    apps/common/audit.py. The table keeps the name it had when the model lived in entitlements.
    """

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=255)
    action = models.CharField(max_length=64)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_log")
    target = models.CharField(max_length=255)
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "entitlements_auditlog"
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise RuntimeError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RuntimeError("the audit log is append-only")
