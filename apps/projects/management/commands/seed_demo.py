from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo project, app, API key and admin user (development only; idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the service listens.")

    def handle(self, *args: Any, **options: Any) -> None:
        base = options["base_url"].rstrip("/")
        try:
            seed = demo_seed(base_url=base)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        pw_note = "" if seed.admin_created else " (if you have not changed it)"
        self.stdout.write(
            "\n".join(
                [
                    self.style.SUCCESS("Demo data ready."),
                    f"  project      {seed.project.slug} (id {seed.project.pk})",
                    f"  app          {seed.app.name} (id {seed.app.pk}), scopes: {', '.join(seed.app.scopes)}",
                    f"  API key      {seed.api_key}",
                    f"  admin        {base}/admin/",
                    f"               user {seed.admin_username} / password {seed.admin_password}{pw_note}",
                    f"  API docs     {base}/api/docs/",
                    "  try it:",
                    f'    curl -s -H "X-API-Key: {seed.api_key}" {base}/api/v1/me',
                ]
            )
        )
