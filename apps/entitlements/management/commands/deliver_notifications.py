from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.common.jobs.runner import JobStart, job_execute
from apps.common.models import JobRun
from apps.entitlements.notifications.health import JOB, delivery_queue_state
from apps.entitlements.notifications.worker import RUN_BUDGET_SECONDS, RunSummary, fulfillment_run

COMMAND = "deliver_notifications"


class Command(BaseCommand):
    help = (
        "Deliver the notifications due now, in this process: what beat's deliver-notifications runs every "
        "FULFILLMENT_POLL_INTERVAL_SECONDS, through the same lock and run history. Prints each batch and a summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--budget",
            type=float,
            default=RUN_BUDGET_SECONDS,
            help=f"Stop claiming after this many seconds (default {RUN_BUDGET_SECONDS:g}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        before = delivery_queue_state(now=timezone.now())
        self.stdout.write(
            f"delivering notifications: {before.backlog} pending ({before.held} held by disabled endpoints) ..."
        )

        def progress(summary: RunSummary) -> None:
            self.stdout.write(
                f"  batch {summary.batches}: {summary.claimed} claimed so far, {summary.delivered} delivered, "
                f"{summary.retry_later} to retry, {summary.failed} failed"
            )

        def body() -> dict[str, int | bool]:
            return fulfillment_run(budget_seconds=options["budget"], progress=progress).as_dict()

        start = JobStart(job=JOB, trigger=JobRun.Trigger.MANUAL, requested_by=f"manage.py {COMMAND} ({_user()})")
        run = job_execute(start, body, retries=False).run
        if run.outcome == JobRun.Outcome.SKIPPED:
            raise CommandError(f"{JOB} did not run: {run.error} (run #{run.pk})")
        if run.outcome == JobRun.Outcome.FAILED:
            raise CommandError(f"{JOB} failed: {run.error} (run #{run.pk})")
        summary = dict(run.summary)
        self.stdout.write(json.dumps(summary, sort_keys=True))
        if summary.get("enabled") is False:
            self.stdout.write(self.style.WARNING("the worker is switched off (FULFILLMENT_WORKER_ENABLED=false)"))
            return
        after = delivery_queue_state(now=timezone.now())
        self.stdout.write(
            self.style.SUCCESS(
                f"run #{run.pk}: {summary['delivered']} delivered, {summary['retry_later']} to retry, "
                f"{summary['failed']} failed, {summary['endpoints_disabled']} endpoints disabled; "
                f"{after.backlog} still pending"
                + (" (out of time: run it again)" if summary.get("out_of_time") else "")
            )
        )


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"
