"""Management commands that run a periodic job by hand do it through the job's lock and run history."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import CommandError

from apps.common.jobs.task import job_run_inline
from apps.common.models import JobRun


def job_run_from_command(job: str, command: str) -> dict[str, Any]:
    """Runs `job` here as a manual start; its summary, or CommandError saying why it did not run."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    run = job_run_inline(job, requested_by=f"manage.py {command} ({user})").run
    if run.outcome == JobRun.Outcome.SKIPPED:
        raise CommandError(f"{job} did not run: {run.error} (run #{run.pk})")
    if run.outcome == JobRun.Outcome.FAILED:
        raise CommandError(f"{job} failed: {run.error} (run #{run.pk})")
    return dict(run.summary)
