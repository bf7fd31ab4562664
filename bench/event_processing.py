"""Ledger events processed per second, end to end, by ONE Celery worker process (solo pool).

N customer.subscription.updated events (a renewal: new period end) for N users whose subscription
rows already exist, with a price mapped to a feature, so each one locks and updates its
SubscriptionRecord and recomputes the user's entitlements. The events go into the ledger directly
(bulk insert, status `received`, routed to the project and user as the webhook view stores them).

--mode batch (the shipped path): one `webhooks.drain_ledger` message is published, as a wake-up
would; the worker's drain claims WEBHOOK_BATCH_SIZE rows at a time (FOR UPDATE SKIP LOCKED) and
processes each batch in one transaction, a savepoint per event, one recompute per user per batch.
--mode single (the path before issue 14, still used for retries and the sweeper): one
`webhooks.process_event` message per row, each event in its own transaction.
Either way the worker starts after the messages are queued, and we poll the ledger until all N
rows are final. The webhook ack path is measured by bench/webhook_acks.py.

    .venv/bin/python bench/event_processing.py [--events 3000] [--mode batch|single] [--batch-size 50]
        [--timeout 120]

The solo pool runs tasks in the worker's main process (no fork, no pipe to a child): one process,
one task at a time, which is what one slot of a prefork worker does minus the IPC.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

FINAL = ("processed", "ignored", "failed")


def broker_db() -> int:
    return int(common.ENV["CELERY_BROKER_URL"].rsplit("/", 1)[1])


def purge_broker() -> None:
    common.redis_cmd(broker_db(), "DEL", "celery", "unacked", "unacked_index")


def seed(count: int) -> list[int]:
    """Fresh subscriptions for bench_proc_0..N-1 and N received ledger rows; returns the row ids."""
    from apps.entitlements.models import Entitlement, SubscriptionRecord
    from apps.projects.models import Project
    from apps.webhooks.models import ProcessorEvent

    project = Project.objects.get(pk=common.seed_tenant())
    users = [f"bench_proc_{i}" for i in range(count)]
    ProcessorEvent.objects.filter(stripe_event_id__startswith="evt_bench_").delete()
    Entitlement.objects.filter(project=project, user_id__startswith="bench_proc_").delete()
    SubscriptionRecord.objects.filter(project=project, user_id__startswith="bench_proc_").delete()
    now = int(time.time())
    old_end = now + 86400
    SubscriptionRecord.objects.bulk_create(
        SubscriptionRecord(
            project=project,
            user_id=user,
            stripe_subscription_id=f"sub_{user}",
            stripe_customer_id=f"cus_{user}",
            status="active",
            price_ids=[common.BENCH_PRICE],
            current_period_start=dt.datetime.fromtimestamp(old_end - 30 * 86400, tz=dt.UTC),
            current_period_end=dt.datetime.fromtimestamp(old_end, tz=dt.UTC),
            last_event_created=now - 3600,
            last_event_id=f"evt_seed_{user}",
            stripe_data=common.subscription_event("evt_seed", user, created=now - 3600, period_end=old_end)["data"][
                "object"
            ],
        )
        for user in users
    )
    rows = []
    for i, user in enumerate(users):
        event = common.subscription_event(f"evt_bench_p{i}", user, created=now, period_end=old_end + 30 * 86400)
        rows.append(
            ProcessorEvent(
                stripe_event_id=event["id"],
                type=event["type"],
                api_version="2026-08-26.dahlia",
                created=dt.datetime.fromtimestamp(now, tz=dt.UTC),
                payload=event,
                raw_body=json.dumps(event),
                headers={},
                # Routed, as the webhook view routes an event at receipt.
                project=project,
                user_id=user,
            )
        )
    return [row.pk for row in ProcessorEvent.objects.bulk_create(rows, batch_size=500)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=120, help="give up after this many seconds of draining")
    parser.add_argument("--mode", choices=("batch", "single"), default="batch")
    parser.add_argument("--batch-size", type=int, default=50, help="WEBHOOK_BATCH_SIZE for the worker")
    args = parser.parse_args()

    common.ensure_database()
    common.django_setup()
    from django.db.models import Count, Max, Min

    from apps.entitlements.models import Entitlement
    from apps.webhooks.models import ProcessorEvent
    from apps.webhooks.tasks import drain_ledger, process_event

    purge_broker()
    ids = seed(args.events)
    if args.mode == "batch":
        drain_ledger.delay()  # one wake-up: the drain loops until the ledger queue is empty
    else:
        for pk in ids:
            process_event.delay(pk)
    queued = common.redis_cmd(broker_db(), "LLEN", "celery")
    rows = ProcessorEvent.objects.filter(pk__in=ids)

    cmd = [
        str(common.VENV_BIN / "celery"),
        "-A",
        "billing_service",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=WARNING",
        "--hostname=bench-processing@%h",
    ]
    started = time.monotonic()
    env = {**common.child_env(), "WEBHOOK_BATCH_SIZE": str(args.batch_size)}
    worker = subprocess.Popen(cmd, env=env, cwd=common.ROOT)  # noqa: S603 - fixed arguments
    done = 0
    try:
        while time.monotonic() - started < args.timeout:
            time.sleep(0.5)
            done = rows.filter(status__in=FINAL).count()
            if done >= len(ids) or worker.poll() is not None:
                break
        wall = time.monotonic() - started
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    purge_broker()

    statuses = dict(rows.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    span = rows.filter(status="processed").aggregate(first=Min("processed_at"), last=Max("processed_at"))
    steady = (span["last"] - span["first"]).total_seconds() if span["first"] else float("nan")
    processed = statuses.get("processed", 0)
    entitled = Entitlement.objects.filter(user_id__startswith="bench_proc_", valid_to__gt=dt.datetime.now(dt.UTC))
    print()
    print(f"event processing, {dt.date.today()}, {common.machine_note()}")
    path = "single path (process_event)"
    if args.mode == "batch":
        path = f"batch path, WEBHOOK_BATCH_SIZE={args.batch_size}"
    print(f"one worker: celery --pool=solo --concurrency=1; {path}; {len(ids)} events ({queued} broker messages)")
    print(f"  final statuses: {statuses} ({done} of {len(ids)} final when polling stopped)")
    print(f"  steady rate: {(processed - 1) / steady:.0f} events/s (first to last processed_at, {steady:.1f}s)")
    print(f"  end to end: {processed / wall:.0f} events/s ({wall:.1f}s from worker spawn, boot included)")
    print(f"  target >= 150/s; entitlement rows now valid past today: {entitled.count()}")
    print(
        f"reproduce: .venv/bin/python bench/event_processing.py --events {args.events} --mode {args.mode} "
        f"--batch-size {args.batch_size} --timeout {args.timeout:.0f}"
    )


if __name__ == "__main__":
    main()
