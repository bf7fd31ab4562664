from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.keys import prefix_of
from apps.projects.models import ApiKey
from apps.projects.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its prefix (the 8 characters after bk_) or the whole key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="A prefix such as ab12cd34, or a whole bk_... key.")

    def handle(self, *args: Any, **options: Any) -> None:
        given: str = options["key"].strip()
        prefix = prefix_of(given) or given
        key = ApiKey.objects.select_related("app").filter(prefix=prefix).first()
        if key is None:
            raise CommandError(f"no API key with prefix {prefix!r}")
        was_live = key.revoked_at is None
        key = api_key_revoke(key=key)
        state = "revoked" if was_live else "was already revoked"
        self.stdout.write(
            self.style.SUCCESS(f"key {key.prefix} of {key.app} {state} at {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}")
        )
