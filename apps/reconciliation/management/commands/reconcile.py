"""manage.py reconcile [--project SLUG] [--mode incremental|full] [--days-back N] [--dry-run]

Every project: through the mode's periodic job (reconcile-daily or reconcile-weekly), so the run is
one manual JobRun under the job's lock, as the admin's "run now" would be. One project, or a dry run
(which is not the job's work: it corrects nothing): that project's run directly, under its lock.
Either way each project's run is a ReconciliationRun with trigger `manual`. Progress is printed per
page; a JSON summary ends the output.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.projects.models import Project
from apps.reconciliation.models import ReconciliationRun
from apps.reconciliation.runs import InvalidRunRequest, RunInProgress, validated_request
from apps.reconciliation.services import reconcile, reconcile_from_command


class Command(BaseCommand):
    help = "Compares projects' records with Stripe, records the drift and corrects what the policy allows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="The project's slug (default: every project with Stripe objects).")
        parser.add_argument("--mode", choices=ReconciliationRun.Mode.values, default=ReconciliationRun.Mode.INCREMENTAL)
        parser.add_argument(
            "--days-back", type=int, default=None, help="Incremental window in days, at most 30 (default: settings)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Report the drift; write and correct nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        mode: str = options["mode"]
        try:
            days_back = validated_request(mode=mode, days_back=options["days_back"])
        except InvalidRunRequest as exc:
            raise CommandError(str(exc)) from exc
        project = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"No project with slug {options['project']!r}.")
        runs: list[ReconciliationRun] = []
        job_error = ""
        if project is None and not options["dry_run"]:
            job_run = reconcile_from_command(mode=mode, days_back=days_back, progress=self._progress, runs=runs)
            if job_run.outcome == "skipped":
                raise CommandError(f"{job_run.job} did not run: {job_run.error} (job run #{job_run.pk})")
            job_error = job_run.error
        else:
            try:
                runs = reconcile(
                    project=project,
                    mode=mode,
                    days_back=days_back,
                    dry_run=options["dry_run"],
                    trigger=ReconciliationRun.Trigger.MANUAL,
                    requested_by="manage.py reconcile",
                    progress=self._progress,
                )
            except RunInProgress as exc:
                raise CommandError(exc.detail) from exc
        self.stdout.write(json.dumps({"runs": [run.summary for run in runs]}, indent=2, sort_keys=True))
        failed = [run for run in runs if run.status != ReconciliationRun.Status.SUCCEEDED]
        if failed or job_error:
            detail = "; ".join(f"run #{run.pk} ({run.project.slug}): {run.error}" for run in failed) or job_error
            raise CommandError(f"reconciliation failed: {detail}")

    def _progress(self, line: str) -> None:
        self.stdout.write(line)
