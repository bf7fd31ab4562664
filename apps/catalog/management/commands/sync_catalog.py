from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.catalog.sync import catalog_sync
from apps.projects.models import Project


class Command(BaseCommand):
    help = "Mirror Stripe products and prices (dj-stripe) and assign products to projects by their metadata."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="Only this project's products (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        project = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"no project with slug {options['project']!r}")
        started = time.monotonic()
        report = catalog_sync(project=project, progress=self.stdout.write)
        self.stdout.write(
            self.style.SUCCESS(
                f"catalog sync: {report.products} products and {report.prices} prices synced, "
                f"{len(report.skipped_products)} products of no known project skipped, "
                f"in {time.monotonic() - started:.1f}s"
            )
        )
