"""`manage.py seed_demo_history`: the demo project's illustrative billing history (devtools/demo_history.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.demo import DEMO_PROJECT_SLUG
from apps.projects.models import Project
from devtools.demo_history import demo_history_seed


class Command(BaseCommand):
    help = (
        "Fill a project (the demo project by default) with an illustrative billing history, so that the admin "
        "dashboard has figures (development only; once: a second run changes nothing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", default=DEMO_PROJECT_SLUG, help="The project's slug.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}; run `manage.py seed_demo` first")
        try:
            history = demo_history_seed(project)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        if not history.created:
            self.stdout.write(f"Demo billing history of {project.slug}: already there, nothing written.")
            return
        self.stdout.write(self.style.SUCCESS(f"Demo billing history of {project.slug} (illustrative, ids *_demo_*):"))
        for kind, count in history.counts.items():
            self.stdout.write(f"  {kind:<20} {count}")
