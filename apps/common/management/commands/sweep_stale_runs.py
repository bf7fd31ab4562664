from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.common.jobs.command import job_run_from_command
from apps.common.runs import stale_after


class Command(BaseCommand):
    help = (
        "Mark replay and catalog sync runs still `running` after RUN_STALE_AFTER_SECONDS failed (their "
        "worker died, or none picked them up): what beat's sweep-stale-runs runs every five minutes."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"failing runs still running after {int(stale_after().total_seconds())} s ...")
        summary = job_run_from_command("sweep-stale-runs", "sweep_stale_runs")
        for label, count in summary.items():
            self.stdout.write(f"  {label}: {count} marked failed")
        self.stdout.write(self.style.SUCCESS(f"stale-run sweep: {sum(summary.values())} runs marked failed"))
