"""Thin tasks of the fulfillment worker (apps/entitlements/notifications/worker.py does the work).

- `fulfillment.deliver`: woken on commit of notifications (apps/entitlements/notifications/wakeup.py)
  and by itself when a run used up its time budget with deliveries still due.
- `fulfillment.deliver_scheduled`: beat's `deliver-notifications` poll, through
  apps.common.jobs.task.periodic_job (the job's lock, one run per tick, a JobRun row, the metrics).
Both do nothing (and log it) when FULFILLMENT_WORKER_ENABLED is off.
"""

from __future__ import annotations

from celery import shared_task

from apps.common.jobs.task import periodic_job


# Never retried: beat's poll is the retry. A worker killed mid-run leaves its deliveries leased
# until the lease ends, when any run takes them again.
@shared_task(name="fulfillment.deliver")
def deliver() -> dict[str, int | bool]:
    from apps.entitlements.notifications.worker import fulfillment_woken_run

    summary = fulfillment_woken_run()
    if summary.get("out_of_time"):
        deliver.delay()  # a fresh task, behind whatever else queued meanwhile
    return summary


@periodic_job("fulfillment.deliver_scheduled")
def deliver_scheduled() -> dict[str, int | bool]:
    """Beat's poll: delivers what lost wake-ups left behind, fails held deliveries past their window."""
    from apps.entitlements.notifications.worker import fulfillment_job_body

    summary = fulfillment_job_body()
    if summary.get("out_of_time"):
        deliver.delay()
    return summary
