"""Signed Stripe webhook deliveries acknowledged per second, the ack latency at a fixed rate, and the
time from receipt to processed with a worker running.

The server is the shipped one: `gunicorn -c docker/gunicorn.conf.py` (its worker layout unless
--workers/--threads are given), only bound to 127.0.0.1. Each POST carries a distinct
customer.subscription.updated event (distinct id, a user of its own), signed with the service's
STRIPE_WEBHOOK_SECRETS. The ack path is the real one: verify, insert into the ledger, commit, answer
200; the commit arms a drain wake-up that a background thread publishes once per burst on the Redis
broker (db 10). No worker runs during (1) and (2).

    .venv/bin/python bench/webhook_acks.py [--seconds 10] [--connections 16] [--rate 300]
        [--open-seconds 15] [--e2e-rate 100] [--e2e-seconds 5] [--workers N --threads N]

(1) closed loop: wrk with a Lua script replaying pre-signed distinct events;
(2) open loop: bench/loadgen.py at --rate, latency from the scheduled send time;
(3) end to end: the rows of (1) and (2) are deleted, a Celery worker as the container runs it
    (prefork, one process per CPU) is started, then --e2e-rate deliveries/s for --e2e-seconds;
    receipt-to-processed is processed_at - received_at of those rows (both stamped by the server).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.loadgen import Request, open_loop, percentile

PATH = "/api/v1/webhooks/stripe"
FINAL = ("processed", "ignored", "failed")

LUA = """
local requests = {}
local n = 0
function init(args)
  for line in io.lines(args[1]) do
    local sig, body = line:match("^([^\\t]*)\\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", "%s",
      {["Content-Type"] = "application/json", ["Stripe-Signature"] = sig}, body)
  end
end
function request()
  n = n + 1
  return requests[((n - 1) %% #requests) + 1]
end
"""


def broker_db() -> int:
    return int(common.ENV["CELERY_BROKER_URL"].rsplit("/", 1)[1])


def purge_broker() -> None:
    common.redis_cmd(broker_db(), "DEL", "celery", "unacked", "unacked_index")


def signed(event_id: str, user: str) -> tuple[str, bytes]:
    from apps.webhooks.signature import sign

    now = int(time.time())
    body = json.dumps(
        common.subscription_event(event_id, user, created=now, period_end=now + 30 * 86400), separators=(",", ":")
    ).encode()
    return sign(body, secret=common.WEBHOOK_SECRET, timestamp=now), body


def stored(prefix: str) -> int:
    from apps.webhooks.models import ProcessorEvent

    return ProcessorEvent.objects.filter(stripe_event_id__startswith=prefix).count()


@contextmanager
def shipped_gunicorn(workers: int | None, threads: int | None) -> Iterator[str]:
    """docker/gunicorn.conf.py as the container runs it; yields the layout it runs with."""
    env = {**common.child_env(), "DJANGO_ENV": "development", "LOG_LEVEL": "WARNING"}
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    if threads:
        env["GUNICORN_THREADS"] = str(threads)
    cmd = [
        str(common.VENV_BIN / "gunicorn"),
        "--config",
        str(common.ROOT / "docker" / "gunicorn.conf.py"),
        f"--bind={common.HOST}:{common.PORT}",
    ]
    probe = (
        "import runpy,sys; sys.argv=['x']; c=runpy.run_path('docker/gunicorn.conf.py'); "
        "print(c.get('worker_class'), c.get('workers'), c.get('threads'))"
    )
    layout = subprocess.run(  # noqa: S603 - fixed arguments
        [str(common.VENV_BIN / "python"), "-c", probe], env=env, cwd=common.ROOT, capture_output=True, text=True
    ).stdout.strip()
    process = subprocess.Popen(cmd, env=env, cwd=common.ROOT)  # noqa: S603 - fixed arguments
    try:
        common.wait_healthy(process, f"{common.BASE_URL}/health")
        yield f"gunicorn -c docker/gunicorn.conf.py (worker_class, workers, threads = {layout})"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def celery_worker() -> Iterator[None]:
    """A worker as docker/entrypoint.sh starts one (prefork, concurrency = CPUs), on the bench broker."""
    cmd = [
        str(common.VENV_BIN / "celery"),
        "-A",
        "billing_service",
        "worker",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=WARNING",
        "--hostname=bench-acks@%h",
    ]
    env = {**common.child_env(), "WORKER_METRICS_PORT": "0"}
    process = subprocess.Popen(cmd, env=env, cwd=common.ROOT)  # noqa: S603 - fixed arguments
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_final(prefix: str, timeout: float) -> int:
    """Polls until no row of `prefix` is waiting or being processed; returns the rows still open."""
    from apps.webhooks.models import ProcessorEvent

    deadline = time.monotonic() + timeout
    while True:
        left = ProcessorEvent.objects.filter(stripe_event_id__startswith=prefix).exclude(status__in=FINAL).count()
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--events", type=int, default=20000, help="pre-signed distinct events for wrk")
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--open-seconds", type=float, default=15)
    parser.add_argument("--e2e-rate", type=float, default=100, help="0 skips the end-to-end phase")
    parser.add_argument("--e2e-seconds", type=float, default=5)
    parser.add_argument("--workers", type=int, default=None, help="WEB_CONCURRENCY (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS (default: the shipped one)")
    args = parser.parse_args()

    common.ensure_database()
    common.django_setup()
    from django.db.models import F

    from apps.webhooks.models import ProcessorEvent

    common.seed_tenant()
    ProcessorEvent.objects.filter(stripe_event_id__startswith="evt_bench_").delete()
    purge_broker()
    run = uuid.uuid4().hex[:8]
    closed_prefix, open_prefix, e2e_prefix = f"evt_bench_{run}_c", f"evt_bench_{run}_o", f"evt_bench_{run}_e"
    url = f"{common.BASE_URL}{PATH}"
    e2e: list[float] = []
    e2e_left = 0

    with shipped_gunicorn(args.workers, args.threads) as layout, tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp, "events.tsv")
        with events.open("w") as out:
            for i in range(args.events):
                sig, body = signed(f"{closed_prefix}{i}", f"bench_ack_{run}_c{i}")
                out.write(f"{sig}\t{body.decode()}\n")
        script = Path(tmp, "webhooks.lua")
        script.write_text(LUA % PATH)
        warm = common.wrk(url, seconds=2, connections=args.connections, script=str(script), script_args=(str(events),))
        ProcessorEvent.objects.filter(stripe_event_id__startswith=closed_prefix).delete()
        time.sleep(1)
        closed = common.wrk(
            url, seconds=args.seconds, connections=args.connections, script=str(script), script_args=(str(events),)
        )
        accepted = stored(closed_prefix)

        def make(prefix: str) -> Callable[[int], Request]:
            def request(i: int) -> Request:
                # A user (so a subscription) per event: no same-second tie, so no Stripe refetch.
                sig, body = signed(f"{prefix}{i}", f"bench_ack_{prefix}{i}")
                return ("POST", url, {"Content-Type": "application/json", "Stripe-Signature": sig}, body)

            return request

        latency = open_loop(make(open_prefix), rate=args.rate, duration=args.open_seconds)
        wakeups = int(common.redis_cmd(broker_db(), "LLEN", "celery") or 0)
        ours = ProcessorEvent.objects.filter(stripe_event_id__startswith=f"evt_bench_{run}")
        waiting = ours.filter(status="received").count()

        if args.e2e_rate > 0:
            # The rows of (1) and (2) are dropped, so that (3) measures a worker that keeps up
            # (bench/event_processing.py measures draining a backlog).
            ours.delete()
            with celery_worker():
                # Wait for the worker to be up (a first event processed), so that its boot is not
                # counted as latency.
                sig, body = signed(f"{e2e_prefix}probe", f"bench_ack_{e2e_prefix}probe")
                headers = {"Content-Type": "application/json", "Stripe-Signature": sig}
                probe = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - loopback
                urllib.request.urlopen(probe, timeout=10).close()  # noqa: S310 - loopback
                wait_final(f"{e2e_prefix}probe", timeout=60)
                e2e_load = open_loop(make(e2e_prefix), rate=args.e2e_rate, duration=args.e2e_seconds)
                e2e_left = wait_final(e2e_prefix, timeout=30)
            rows = ProcessorEvent.objects.filter(stripe_event_id__startswith=e2e_prefix, status="processed").exclude(
                stripe_event_id=f"{e2e_prefix}probe"
            )
            e2e = sorted(
                delta.total_seconds() * 1000
                for delta in rows.annotate(delta=F("processed_at") - F("received_at")).values_list("delta", flat=True)
            )
    purge_broker()

    print()
    print(f"webhook acks, {dt.date.today()}, {common.machine_note()}")
    print(f"{layout}; broker redis db {broker_db()}; no worker during (1) and (2)")
    print(f"  (warm-up: {warm.requests} deliveries, not counted)")
    print(f"(1) closed loop (wrk -c{args.connections}, {args.seconds}s): {closed.line()}")
    print(
        f"  acks/s {closed.rps:.0f} (target >= 600); {accepted} distinct events stored of {closed.requests} "
        "deliveries (the rest are duplicates if wrk wrapped around --events)"
    )
    print(f"(2) open loop: {latency.line()}")
    print(f"  target at {args.rate:.0f}/s: p99 <= 50 ms, 0 errors")
    print(f"  drain wake-ups published for {accepted + latency.ok} stored events: {wakeups}; rows waiting: {waiting}")
    if args.e2e_rate > 0:
        print(f"(3) with a worker (the rows of (1) and (2) dropped first): {e2e_load.line()}")
        print(
            f"  receipt -> processed over {len(e2e)} events: p50 {percentile(e2e, 0.5):.0f} ms, "
            f"p99 {percentile(e2e, 0.99):.0f} ms, max {e2e[-1] if e2e else float('nan'):.0f} ms "
            f"(target < 1000 ms); not final after 30 s: {e2e_left}"
        )
    layout_flags = (f" --workers {args.workers}" if args.workers else "") + (
        f" --threads {args.threads}" if args.threads else ""
    )
    print(
        "reproduce: .venv/bin/python bench/webhook_acks.py "
        f"--seconds {args.seconds} --connections {args.connections} --rate {args.rate:.0f} "
        f"--open-seconds {args.open_seconds:.0f} --e2e-rate {args.e2e_rate:.0f} "
        f"--e2e-seconds {args.e2e_seconds:.0f}{layout_flags}"
    )


if __name__ == "__main__":
    main()
