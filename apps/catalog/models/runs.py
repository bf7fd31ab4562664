"""A catalog sync run: one pull of products and prices from Stripe, done by a worker.

`POST /api/v1/catalog/sync` creates a run and answers 202; the worker fills in its counts. A run
whose worker died is marked failed by the stale-run sweep (apps/common/runs.py).
"""

from __future__ import annotations

from django.db import models

from apps.common.runs import RunStatus
from apps.projects.models import Project


class CatalogSyncRun(models.Model):
    Status = RunStatus

    # Null: a sync of every project's products (the sync_catalog command without --project).
    project = models.ForeignKey(
        Project, on_delete=models.PROTECT, null=True, blank=True, related_name="catalog_sync_runs"
    )
    requested_by = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    # {"products": n, "prices": n, "skipped": n}: skipped counts Stripe products of no known project.
    counts = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "started_at"], name="catalogsyncrun_project_started"),
            models.Index(fields=["status", "started_at"], name="catalogsyncrun_status_started"),
        ]

    def __str__(self) -> str:
        return f"catalog sync #{self.pk} ({self.status})"
