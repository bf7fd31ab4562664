from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from apps.projects.selectors import project_get_by_slug
from apps.webhooks.replays import MAX_EVENTS, ReplayResult, ReplayTooLarge, replay_run


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"--{name} is not an ISO 8601 datetime: {value!r}")
    return make_aware(parsed) if is_naive(parsed) else parsed


class Command(BaseCommand):
    help = (
        "Replay stored Stripe events through their handlers, oldest first (at most "
        f"{MAX_EVENTS} per run). With --dry-run nothing changes and the would-be changes are printed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ids", help="Comma-separated event ids (evt_a,evt_b).")
        parser.add_argument("--since", help="Events created at or after this ISO 8601 time.")
        parser.add_argument("--until", help="Events created before this ISO 8601 time.")
        parser.add_argument("--type", action="append", default=[], dest="types", help="An event type; repeatable.")
        parser.add_argument("--project", help="Only events routed to this project (its slug).")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--reason", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        event_ids = [part.strip() for part in (options["ids"] or "").split(",") if part.strip()]
        since, until = _when(options["since"], "since"), _when(options["until"], "until")
        if not (event_ids or since or until or options["types"]):
            raise CommandError("give at least one of --ids, --since, --until or --type")
        project_id = None
        if options["project"]:
            project = project_get_by_slug(slug=options["project"])
            if project is None:
                raise CommandError(f"no project with slug {options['project']!r}")
            project_id = project.pk
        dry_run = bool(options["dry_run"])
        try:
            run = replay_run(
                project_id=project_id,
                requested_by=f"cli:{getpass.getuser()}",
                event_ids=event_ids,
                since=since,
                until=until,
                types=options["types"],
                dry_run=dry_run,
                reason=options["reason"],
                on_result=self._print_result,
            )
        except ReplayTooLarge as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{name}={n}" for name, n in run.counts.items())
        label = "dry run (nothing changed)" if dry_run else "replay"
        style = self.style.WARNING if run.status == run.Status.FAILED else self.style.SUCCESS
        self.stdout.write(style(f"{label} #{run.pk} {run.status}: {counts}"))

    def _print_result(self, result: ReplayResult) -> None:
        line = f"{result.event_id} {result.type}: {result.status}"
        if result.note:
            line += f" ({result.note})"
        if result.error:
            line += f" error: {result.error}"
        self.stdout.write(line)
        for change in result.changes:
            self.stdout.write(f"    {change}")
