from __future__ import annotations

import getpass
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.catalog.runs import catalog_sync_execute, catalog_sync_start
from apps.projects.models import Project


class Command(BaseCommand):
    help = (
        "Mirror Stripe products and prices (dj-stripe) and assign products to projects by their metadata. "
        "Runs here, not in a worker, and is recorded as a catalog sync run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="Only this project's products (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        project = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"no project with slug {options['project']!r}")
        started = time.monotonic()
        run = catalog_sync_start(project=project, requested_by=f"cli:{getpass.getuser()}")
        try:
            run = catalog_sync_execute(run_id=run.pk, progress=self.stdout.write)
        except Exception as exc:
            raise CommandError(f"catalog sync #{run.pk} failed: {type(exc).__name__}: {exc}") from exc
        counts = run.counts
        self.stdout.write(
            self.style.SUCCESS(
                f"catalog sync #{run.pk}: {counts['products']} products and {counts['prices']} prices synced, "
                f"{counts['skipped']} products of no known project skipped, "
                f"in {time.monotonic() - started:.1f}s"
            )
        )
