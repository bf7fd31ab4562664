from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.projects.models import Project


class Heartbeat(models.Model):
    """The last time a background component proved it was alive (the worker runs a beat task).

    Exported on /metrics as a timestamp, so an alert can fire when the worker or beat stops.
    """

    name = models.CharField(max_length=64, unique=True)
    last_seen_at = models.DateTimeField()
    # How many heartbeats were recorded: each scheduled tick adds exactly one (two beats or not).
    beats = models.PositiveBigIntegerField(default=0)

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
        # Declared here for want of a better home: CSV exports span models (the finance role holds it).
        permissions = [("export_data", "Can export data (CSV)")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise RuntimeError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RuntimeError("the audit log is append-only")


class JobPolicy(models.Model):
    """The retry and timeout policy of one periodic job (a billing_service/beat_schedule.py entry).

    `install_beat_schedule` writes the declared values; an operator may change them here without a
    deploy, and a later install keeps the edit unless --reset. Read at each run.
    """

    job = models.CharField(max_length=200, unique=True, help_text="The beat_schedule entry's name.")
    max_attempts = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Attempts per tick, the first included.",
    )
    base_backoff_seconds = models.PositiveIntegerField(default=30, help_text="Delay before the second attempt.")
    backoff_multiplier = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("2"),
        validators=[MinValueValidator(Decimal("1"))],
        help_text="Each further delay is the previous one times this.",
    )
    max_backoff_seconds = models.PositiveIntegerField(
        default=600,
        # Past the broker's visibility timeout a delayed message may be delivered twice.
        validators=[MaxValueValidator(3000)],
        help_text="No delay exceeds this (before jitter).",
    )
    jitter_seconds = models.PositiveIntegerField(
        default=10, help_text="A uniform random 0..jitter is added to each delay."
    )
    timeout_seconds = models.PositiveIntegerField(
        default=240,
        validators=[MinValueValidator(1), MaxValueValidator(6 * 3600)],
        help_text="One attempt is stopped (and recorded failed) after this long.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "job policies"
        ordering = ["job"]
        permissions = [("run_job", "Can run a periodic job now")]

    def __str__(self) -> str:
        return self.job

    def clean(self) -> None:
        if self.max_backoff_seconds < self.base_backoff_seconds:
            raise ValidationError({"max_backoff_seconds": "must be at least base_backoff_seconds"})


class JobRun(models.Model):
    """One start of a periodic job: by beat, by hand, or as a retry of a failed attempt.

    A scheduled run claims its tick (the schedule slot it belongs to); a second start for the same
    tick (two beats, a redelivered message) is recorded `skipped`, as is a start while another run
    of the job holds its lock. Rows older than JOB_RUN_RETENTION_DAYS are purged by a job.
    """

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled"
        MANUAL = "manual"
        RETRY = "retry"

    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    job = models.CharField(max_length=200)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    attempt = models.PositiveSmallIntegerField(default=1)
    tick = models.DateTimeField(null=True, blank=True, help_text="The schedule slot this run belongs to.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True, help_text="When the next attempt was scheduled for.")
    task_id = models.CharField(max_length=64, blank=True)
    requested_by = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["job", "-started_at"], name="jobrun_job_started"),
            models.Index(fields=["started_at"], name="jobrun_started"),
        ]
        constraints = [
            # One scheduled run per tick, however many beats sent it.
            models.UniqueConstraint(
                fields=["job", "tick"],
                condition=models.Q(trigger="scheduled") & ~models.Q(outcome="skipped"),
                name="jobrun_one_scheduled_run_per_tick",
            )
        ]

    def __str__(self) -> str:
        return f"{self.job} #{self.pk} {self.trigger} attempt {self.attempt}: {self.outcome}"
