"""Reconciliation with Stripe: runs, durable list cursors, and the discrepancies they find."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.projects.models import Project


class ReconciliationRun(models.Model):
    """One comparison of one project's records with its Stripe account.

    At most one run per project is `running` (a partial unique constraint): a second trigger is
    told which run is in progress. A run whose process died is marked failed by the next run of
    the project or by the stale-run sweep, never left running for ever.
    """

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled"
        MANUAL = "manual"  # manage.py reconcile
        API = "api"
        ADMIN = "admin"

    class Mode(models.TextChoices):
        INCREMENTAL = "incremental"
        FULL = "full"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="reconciliation_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    days_back = models.PositiveSmallIntegerField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    requested_by = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    # Moved at every checkpoint (each page): the stale-run sweep measures a run's age from here, so a
    # long run that still makes progress is never taken for a dead one.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Per object type: checked, drift_found, corrected, left_open, errors; and the Seed A names.
    counts = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    # Where each list got to (object type -> cursor), copied from the durable cursors per page.
    cursors = models.JSONField(default=dict, blank=True)
    stripe_requests = models.PositiveIntegerField(default=0)
    db_writes = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The run this one resumes (a killed run's cursors are taken over).
    resumed_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["project", "-started_at"], name="recon_run_project_started")]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(status="running"), name="recon_one_running_run_per_project"
            )
        ]

    def __str__(self) -> str:
        return f"reconciliation #{self.pk} {self.mode} ({self.status})"


class SyncCursor(models.Model):
    """Where a listing of one object type at Stripe got to, checkpointed after every page.

    A run that dies resumes from here; a finished listing clears `starting_after`.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sync_cursors")
    object_type = models.CharField(max_length=32)
    mode = models.CharField(max_length=16, choices=ReconciliationRun.Mode.choices)
    run = models.ForeignKey(ReconciliationRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    starting_after = models.CharField(max_length=255, blank=True)
    # The window the listing covers (incremental: created >= this), fixed for the whole listing.
    window_start = models.DateTimeField(null=True, blank=True)
    # When the pass this listing belongs to began (the started_at of the run that began it): the
    # listings of one mode form a pass that a dead run's successor finishes. A finding not seen
    # since is gone once a full listing completes.
    pass_started_at = models.DateTimeField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0)
    objects_seen = models.PositiveIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "billing_sync_cursors"
        constraints = [models.UniqueConstraint(fields=["project", "object_type", "mode"], name="sync_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.project_id}/{self.object_type}/{self.mode} after {self.starting_after or '-'}"


class SyncCursorPage(models.Model):
    """The Stripe ids one checkpointed page of a listing handed to the comparers (or, for the Events
    listing, the objects its events changed), so that a resumed listing still knows what its dead
    predecessor saw: full mode names the local rows Stripe never listed only from every page's ids.

    Written in the same transaction as the cursor's checkpoint; deleted when a new pass begins.
    """

    cursor = models.ForeignKey(SyncCursor, on_delete=models.CASCADE, related_name="seen_pages")
    number = models.PositiveIntegerField()
    stripe_ids = models.JSONField(default=list)

    class Meta:
        db_table = "billing_sync_cursor_pages"
        constraints = [models.UniqueConstraint(fields=["cursor", "number"], name="sync_cursor_page_unique")]

    def __str__(self) -> str:
        return f"{self.cursor_id} page {self.number}"


class Discrepancy(models.Model):
    """One difference between our records and Stripe's, and what became of it.

    An open finding is not duplicated (a partial unique constraint on project, kind and Stripe id);
    one that is no longer found by a later run is closed with a note.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        AUTO_RESOLVED = "auto_resolved"
        RESOLVED = "resolved"
        IGNORED = "ignored"

    class Action(models.TextChoices):
        ACCEPT_STRIPE = "accept_stripe"
        KEEP_LOCAL = "keep_local"
        IGNORE = "ignore"
        AUTO = "auto"  # corrected by a run under the kind's policy
        GONE = "gone"  # no longer found: fixed elsewhere

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="discrepancies")
    run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="discrepancies")
    last_seen_run = models.ForeignKey(
        ReconciliationRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32)
    stripe_id = models.CharField(max_length=255)
    user_id = models.CharField(max_length=255, blank=True)
    local_value = models.JSONField(null=True, blank=True)
    stripe_value = models.JSONField(null=True, blank=True)
    detected_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    resolution_action = models.CharField(max_length=16, choices=Action.choices, blank=True)
    resolved_by = models.CharField(max_length=255, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "discrepancies"
        ordering = ["-detected_at", "-id"]
        indexes = [
            models.Index(fields=["project", "status", "kind"], name="discrepancy_project_status"),
            models.Index(fields=["project", "user_id"], name="discrepancy_project_user"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind", "stripe_id"],
                condition=models.Q(status="open"),
                name="discrepancy_one_open_per_object",
            )
        ]
        permissions = [
            ("resolve_discrepancy", "Can resolve discrepancies"),
            ("run_reconciliation", "Can start a reconciliation run"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.stripe_id} ({self.status})"
