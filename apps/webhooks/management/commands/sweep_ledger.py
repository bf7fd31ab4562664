from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.common.jobs.command import job_run_from_command


class Command(BaseCommand):
    help = (
        "Re-enqueue Stripe events stuck in the ledger (a lost message, a killed worker, failed retries): "
        "what beat's sweep-webhook-ledger runs every minute. The workers process what it enqueues."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("sweeping the webhook ledger ...")
        summary = job_run_from_command("sweep-webhook-ledger", "sweep_ledger")
        for status, count in summary.items():
            self.stdout.write(f"  {status}: {count} re-enqueued")
        self.stdout.write(self.style.SUCCESS(f"ledger sweep: {sum(summary.values())} events re-enqueued"))
