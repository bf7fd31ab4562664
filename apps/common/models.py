from __future__ import annotations

from django.db import models


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
