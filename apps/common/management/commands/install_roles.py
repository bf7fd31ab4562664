from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.common.roles import UnknownPermission, roles_install


class Command(BaseCommand):
    help = (
        "Create the finance, support and ops groups and set each one's permissions to exactly apps/common/roles.py "
        "(idempotent: a re-run changes nothing; a permission added by hand is removed)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            changes = roles_install()
        except UnknownPermission as exc:
            raise CommandError(str(exc)) from None
        for change in changes:
            if not (change.created or change.added or change.removed):
                self.stdout.write(f"role {change.role}: unchanged")
                continue
            parts = ["created"] if change.created else []
            if change.added:
                parts.append(f"added {', '.join(change.added)}")
            if change.removed:
                parts.append(f"removed {', '.join(change.removed)}")
            self.stdout.write(f"role {change.role}: {'; '.join(parts)}")
