from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.services import project_create


class Command(BaseCommand):
    help = "Create a project (tenant)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", required=True, help="Also the `project` metadata value on Stripe objects.")
        parser.add_argument(
            "--redirect-prefix",
            action="append",
            default=[],
            dest="prefixes",
            help="An allowed success/cancel/return URL prefix; repeat for several.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_create(
                name=options["name"], slug=options["slug"], allowed_redirect_prefixes=options["prefixes"]
            )
        except ValidationError as exc:
            raise CommandError(f"invalid project: {exc.message_dict}") from None
        self.stdout.write(self.style.SUCCESS(f"created project {project.slug} (id {project.pk})"))
