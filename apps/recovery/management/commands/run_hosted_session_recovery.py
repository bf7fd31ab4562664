from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.jobs.command import job_run_from_command
from apps.common.jobs.runner import JobStart, job_execute
from apps.common.models import JobRun
from apps.recovery.tasks import hosted_session_recovery
from apps.recovery.worker import JOB

COMMAND = "run_hosted_session_recovery"


class Command(BaseCommand):
    help = (
        "Run one hosted-session recovery now, in this process, through the job's lock and run history: sweep, "
        "give abandoned sessions a way back, notify, retry earlier failed notifications. Prints the run's JSON "
        "summary. --trigger scheduled records it as beat's run of the current tick (beat then skips that tick)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--trigger", choices=["manual", "scheduled"], default="manual")

    def handle(self, *args: Any, **options: Any) -> None:
        trigger: str = options["trigger"]
        self.stdout.write(f"running hosted-session recovery ({trigger}) ...")
        summary = job_run_from_command(JOB, COMMAND) if trigger == "manual" else _scheduled_run()
        self.stdout.write(json.dumps(summary, sort_keys=True, default=str))
        if summary.get("enabled") is False:
            self.stdout.write(self.style.WARNING("recovery is switched off (HOSTED_RECOVERY_WORKER_ENABLED=false)"))
        elif summary.get("status") == "succeeded":
            self.stdout.write(self.style.SUCCESS(f"recovery run #{summary['recovery_run']}: succeeded"))


def _scheduled_run() -> dict[str, Any]:
    """As beat's start of the current tick would run (job_run_from_command only makes manual starts)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    start = JobStart(job=JOB, trigger=JobRun.Trigger.SCHEDULED, requested_by=f"manage.py {COMMAND} ({user})")
    run = job_execute(start, hosted_session_recovery.job_body, retries=False).run
    if run.outcome != JobRun.Outcome.SUCCEEDED:
        raise CommandError(f"{JOB} {run.outcome}: {run.error} (run #{run.pk})")
    return dict(run.summary)
