from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.models import Project, Scope
from apps.projects.services import app_create


class Command(BaseCommand):
    help = "Create a micro-app in a project and print its first API key (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            dest="scopes",
            choices=Scope.values,
            help="A scope to grant; repeat for several.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        try:
            app, raw = app_create(project=project, name=options["name"], scopes=options["scopes"], created_by="cli")
        except ValidationError as exc:
            raise CommandError(f"invalid app: {exc.message_dict}") from None
        self.stdout.write(self.style.SUCCESS(f"created app {app} (id {app.pk}) with scopes {app.scopes or 'none'}"))
        self.stdout.write(f"API key (shown once, store it now): {raw}")
