from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.common.idempotency import RETENTION
from apps.common.jobs.command import job_run_from_command


class Command(BaseCommand):
    help = (
        "Delete stored Idempotency-Key answers older than the retention (24 h): what beat's "
        "purge-idempotency-records runs nightly."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"purging Idempotency-Key records older than {RETENTION} ...")
        deleted = job_run_from_command("purge-idempotency-records", "purge_idempotency")["deleted"]
        self.stdout.write(self.style.SUCCESS(f"idempotency purge: {deleted} records deleted"))
