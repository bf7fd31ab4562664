from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.common.runs import stale_after, stale_runs_sweep


class Command(BaseCommand):
    help = (
        "Mark replay and catalog sync runs still `running` after RUN_STALE_AFTER_SECONDS failed (their "
        "worker died, or none picked them up): what beat's sweep-stale-runs runs every five minutes."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"failing runs still running after {int(stale_after().total_seconds())} s ...")
        summary = stale_runs_sweep()
        for label, count in summary.items():
            self.stdout.write(f"  {label}: {count} marked failed")
        self.stdout.write(self.style.SUCCESS(f"stale-run sweep: {sum(summary.values())} runs marked failed"))
