from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.common.beat import beat_schedule_install


class Command(BaseCommand):
    help = "Install the periodic tasks declared in billing_service/beat_schedule.py (admin edits are kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="Overwrite admin edits with the declared values.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = beat_schedule_install(reset=options["reset"])
        for name in report.created:
            self.stdout.write(f"created  {name}")
        for name in report.reset:
            self.stdout.write(f"reset    {name}")
        for name in report.kept:
            self.stdout.write(f"kept     {name} (already installed; --reset to overwrite)")
        self.stdout.write(
            self.style.SUCCESS(
                f"beat schedule: {len(report.created)} created, {len(report.reset)} reset, {len(report.kept)} kept"
            )
        )
