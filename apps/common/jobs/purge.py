"""Keeps the job run history bounded."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.common.models import JobRun

BATCH = 5000  # deletes in batches: a long backlog never holds one huge transaction


def job_runs_purge() -> int:
    """Deletes runs that started more than JOB_RUN_RETENTION_DAYS ago; how many."""
    cutoff = timezone.now() - timedelta(days=int(getattr(settings, "JOB_RUN_RETENTION_DAYS", 30)))
    deleted = 0
    while True:
        ids = list(JobRun.objects.filter(started_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:BATCH])
        if not ids:
            return deleted
        deleted += JobRun.objects.filter(id__in=ids).delete()[0]
