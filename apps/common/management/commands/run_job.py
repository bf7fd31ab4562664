from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.jobs.command import job_run_from_command
from billing_service.beat_schedule import BEAT_SCHEDULE


class Command(BaseCommand):
    help = (
        "Run one periodic job now, in this process, through its lock and run history (a `manual` run). "
        "With --list, the jobs there are."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job", nargs="?", help="The job's name, as in billing_service/beat_schedule.py.")
        parser.add_argument("--list", action="store_true", help="List the periodic jobs and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        names = [entry.name for entry in BEAT_SCHEDULE]
        if options["list"]:
            for entry in BEAT_SCHEDULE:
                self.stdout.write(f"{entry.name:32} {entry.description}")
            return
        job = options["job"]
        if job not in names:
            raise CommandError(f"unknown job {job!r}; one of: {', '.join(names)}")
        self.stdout.write(f"running {job} ...")
        summary = job_run_from_command(job, "run_job")
        self.stdout.write(json.dumps(summary, sort_keys=True, default=str))
        self.stdout.write(self.style.SUCCESS(f"{job}: succeeded"))
