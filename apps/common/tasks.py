from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from apps.common.models import Heartbeat


@shared_task(name="common.scheduler_heartbeat")
def scheduler_heartbeat() -> None:
    """Beat sends this; the worker running it proves both are alive."""
    Heartbeat.objects.update_or_create(name="worker", defaults={"last_seen_at": timezone.now()})


@shared_task(name="common.purge_idempotency_records")
def purge_idempotency_records() -> int:
    from apps.common.idempotency import idempotency_records_purge

    return idempotency_records_purge()


@shared_task(name="common.sweep_stale_runs")
def sweep_stale_runs() -> dict[str, int]:
    from apps.common.runs import stale_runs_sweep

    return stale_runs_sweep()
