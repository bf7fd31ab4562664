"""Thin tasks: each takes ids and calls one service; the task owns its retries."""

from __future__ import annotations

from celery import shared_task

from apps.common.jobs.task import periodic_job


@shared_task(
    name="webhooks.process_event",
    # Acknowledged after it ran: a worker killed mid-way leaves the message for another worker
    # (and the row in `processing`, which the sweeper re-enqueues once the claim is stale).
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    retry_backoff=5,  # 5 s, 10 s, 20 s ... capped below
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
)
def process_event(ledger_id: int) -> str | None:
    from apps.webhooks.processing import event_process

    outcome = event_process(ledger_id=ledger_id)
    return outcome.status if outcome is not None else None


@shared_task(name="webhooks.drain_ledger")
def drain_ledger() -> dict[str, int]:
    """Started by a wake-up (apps/webhooks/wakeup.py) and by itself; the ledger is the queue."""
    from apps.webhooks.drain import ledger_drain

    summary = ledger_drain()
    if summary.out_of_time:
        # Rows are still waiting: a fresh task, behind whatever else queued meanwhile.
        drain_ledger.delay()
    return summary.as_dict()


@periodic_job("webhooks.drain_ledger_scheduled")
def drain_ledger_scheduled() -> dict[str, int]:
    """Beat's drain: picks up rows whose wake-up was lost (a dead web process, the broker away)."""
    from apps.webhooks.drain import ledger_drain

    summary = ledger_drain()
    if summary.out_of_time:
        drain_ledger.delay()
    return summary.as_dict()


@periodic_job("webhooks.sweep_ledger")
def sweep_ledger() -> dict[str, int]:
    from apps.webhooks.sweeper import ledger_sweep

    return ledger_sweep()


@shared_task(
    name="webhooks.replay_run",
    # Acknowledged on receipt and never retried: a replay is not restarted behind its caller's back.
    # A worker killed mid-run leaves the run `running`, which the stale-run sweep marks failed;
    # an exception marks it failed at once (replay_execute).
    acks_late=False,
    reject_on_worker_lost=False,
)
def replay_run_task(replay_id: int) -> str:
    from apps.webhooks.replays import replay_execute

    return str(replay_execute(replay_id=replay_id).status)
