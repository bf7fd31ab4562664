from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.entitlements.revenue_days import revenue_days_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the revenue ledger's daily totals (the dashboard's revenue chart) from the ledger itself: "
        "after a bulk load that bypassed RevenueEntry.save(), or to be sure they match."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project-id", type=int, help="One project (default: all).")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = revenue_days_rebuild(project_id=options["project_id"])
        self.stdout.write(f"revenue days rebuilt: {rows} (project, day, currency) rows")
