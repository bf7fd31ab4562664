from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.models import App
from apps.projects.services import api_key_rotate


class Command(BaseCommand):
    help = "Issue a new API key for an app. Old keys stay live until revoked, unless --revoke-old."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--app", required=True, help="The app's name.")
        parser.add_argument("--revoke-old", action="store_true", help="Revoke every other live key of the app.")

    def handle(self, *args: Any, **options: Any) -> None:
        app = App.objects.filter(project__slug=options["project"], name=options["app"]).first()
        if app is None:
            raise CommandError(f"no app {options['app']!r} in project {options['project']!r}")
        key, raw, revoked = api_key_rotate(app=app, revoke_others=options["revoke_old"], created_by="cli")
        self.stdout.write(f"new key {key.prefix} for {app}")
        self.stdout.write(f"API key (shown once, store it now): {raw}")
        if revoked:
            self.stdout.write(f"revoked: {', '.join(revoked)}")
        elif options["revoke_old"]:
            self.stdout.write("there were no other live keys to revoke")
        else:
            self.stdout.write("old keys are still live; revoke them with revoke_key once callers have switched")
