from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.common.jobs.command import job_run_from_command
from apps.recovery.config import recovery_settings


class Command(BaseCommand):
    help = (
        "Sweep hosted checkout sessions now: open ones past their expiry become expired, expired ones whose "
        "invoice is still open become abandoned after HOSTED_SESSION_ABANDON_AFTER_SECONDS. What beat's "
        "sweep-hosted-sessions runs every minute, through the same lock. --dry-run counts and writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would change; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        abandon_after = recovery_settings().abandon_after_seconds
        self.stdout.write(
            f"sweeping hosted sessions{' (dry run: nothing is written)' if dry_run else ''}: "
            f"open past expires_at -> expired; expired over {abandon_after}s with an open invoice -> abandoned ..."
        )
        if dry_run:
            # Read-only, so it needs neither the job's lock nor a run row.
            from apps.recovery.sweeps import sweep_hosted_sessions

            counts = sweep_hosted_sessions(dry_run=True)
            summary = {"expired": counts["expired"], "abandoned": counts["abandoned"]}
        else:
            summary = job_run_from_command("sweep-hosted-sessions", "sweep_hosted_sessions")
        verb = "would be" if dry_run else ""
        for step in ("expired", "abandoned"):
            self.stdout.write(f"  {step}: {summary[step]}{f' ({verb} changed)' if dry_run else ''}")
        self.stdout.write(json.dumps({"dry_run": dry_run, **summary}, sort_keys=True))
        self.stdout.write(self.style.SUCCESS("hosted-session sweep: done"))
