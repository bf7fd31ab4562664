"""The raw Stripe event ledger and the replay runs over it.

A ProcessorEvent row is written by the webhook view *before* any processing (dj-stripe's habit), so
that an event Stripe delivered is never lost: the sweeper re-enqueues rows a broker or a killed
worker dropped, and an operator can replay any of them.
"""

from __future__ import annotations

from django.db import models

from apps.common.runs import RunStatus
from apps.projects.models import Project

# On the row of an event that arrived without `created` (see ProcessorEvent.created_stamped).
CREATED_STAMPED_NOTE = "created missing: stamped with the time of receipt"


class ProcessorEvent(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSING = "processing"
        PROCESSED = "processed"
        FAILED = "failed"
        IGNORED = "ignored"

    # Unique: the dedupe of Stripe's at-least-once delivery is this constraint, not a lookup.
    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=128)
    api_version = models.CharField(max_length=64, blank=True)
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(help_text="Stripe's event.created (the time of receipt when it was missing).")
    # A hand-made event without `created` is stamped with the time of receipt rather than refused;
    # this says so, since its place in Stripe's order is then a guess.
    created_stamped = models.BooleanField(
        default=False, help_text="The event had no `created`: `created` is the time of receipt."
    )
    payload = models.JSONField()
    raw_body = models.TextField(help_text="The body exactly as received (what the signature covers).")
    headers = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Routed at receipt (from the object's metadata or customer), so that a tenant's ops key can see
    # and replay its events even while they fail; processing fills them in if receipt could not.
    project = models.ForeignKey(
        Project, on_delete=models.PROTECT, null=True, blank=True, related_name="processor_events"
    )
    user_id = models.CharField(max_length=255, blank=True, help_text="The project's user the event is about.")
    note = models.TextField(blank=True)
    changes = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "processor_events"
        indexes = [
            # The sweeper: rows stuck in received (by received_at) or processing/failed (by claimed_at).
            models.Index(fields=["status", "received_at"], name="procevt_status_received"),
            models.Index(fields=["status", "claimed_at"], name="procevt_status_claimed"),
            # Replays select by time window (and type), in created order, optionally per project.
            models.Index(fields=["created", "id"], name="procevt_created"),
            models.Index(fields=["type", "created"], name="procevt_type_created"),
            models.Index(fields=["project", "created"], name="procevt_project_created"),
            # One customer's events (the admin, support): (project, user) in created order.
            models.Index(fields=["project", "user_id", "created"], name="procevt_project_user"),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_event_id} {self.type} ({self.status})"


class ReplayRun(models.Model):
    Status = RunStatus

    # Null: an operator's replay across all projects (command line, admin).
    project = models.ForeignKey(Project, on_delete=models.PROTECT, null=True, blank=True, related_name="replay_runs")
    requested_by = models.CharField(max_length=255)
    reason = models.TextField(blank=True)
    params = models.JSONField(default=dict)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    counts = models.JSONField(default=dict)
    results = models.JSONField(default=list)
    # Why a run failed as a whole (its task raised, or the stale-run sweep found it abandoned);
    # a failed event is reported in `results` instead.
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)  # also when it started: the sweep's clock
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "created_at"], name="replayrun_project_created"),
            models.Index(fields=["status", "created_at"], name="replayrun_status_created"),
        ]

    def __str__(self) -> str:
        return f"replay #{self.pk} ({'dry run, ' if self.dry_run else ''}{self.status})"
