"""Signed Stripe webhook deliveries acknowledged per second, and the ack latency at a fixed rate.

Each POST carries a distinct customer.subscription.updated event (distinct id), signed with the
service's STRIPE_WEBHOOK_SECRETS. The ack path is the real one: verify, insert into the ledger,
commit, enqueue process_event on the Redis broker (db 10, not eager), answer 200. No worker runs.

    .venv/bin/python bench/webhook_acks.py [--seconds 10] [--connections 16] [--rate 300]
        [--open-seconds 15] [--workers 2] [--threads 4]

(1) closed loop: wrk with a Lua script replaying pre-signed distinct events;
(2) open loop: bench/loadgen.py at --rate, latency from the scheduled send time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.loadgen import Request, open_loop

PATH = "/api/v1/webhooks/stripe"

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--events", type=int, default=20000, help="pre-signed distinct events for wrk")
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--open-seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    common.ensure_database()
    common.django_setup()
    from apps.webhooks.models import ProcessorEvent

    common.seed_tenant()
    ProcessorEvent.objects.filter(stripe_event_id__startswith="evt_bench_").delete()
    common.purge_broker_queue()
    run = uuid.uuid4().hex[:8]
    closed_prefix, open_prefix = f"evt_bench_{run}_c", f"evt_bench_{run}_o"
    url = f"{common.BASE_URL}{PATH}"

    with common.gunicorn(args.workers, args.threads), tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp, "events.tsv")
        with events.open("w") as out:
            for i in range(args.events):
                sig, body = signed(f"{closed_prefix}{i}", f"bench_ack_{i % 500}")
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

        def make(i: int) -> Request:
            sig, body = signed(f"{open_prefix}{i}", f"bench_ack_{i % 500}")
            return ("POST", url, {"Content-Type": "application/json", "Stripe-Signature": sig}, body)

        latency = open_loop(make, rate=args.rate, duration=args.open_seconds)
        queued = common.redis_cmd(10, "LLEN", "celery")
    common.purge_broker_queue()

    print()
    print(f"webhook acks, {dt.date.today()}, {common.machine_note()}")
    print(f"gunicorn gthread --workers {args.workers} --threads {args.threads}; broker redis db 10, no worker")
    print(f"  (warm-up: {warm.requests} deliveries, not counted)")
    print(f"closed loop (wrk -c{args.connections}, {args.seconds}s): {closed.line()}")
    print(
        f"  acks/s {closed.rps:.0f} (target >= 300); {accepted} distinct events stored of {closed.requests} "
        "deliveries (the rest are duplicates if wrk wrapped around --events)"
    )
    print(f"open loop: {latency.line()}")
    print(f"  messages left on the broker queue: {queued}")
    print(
        "reproduce: .venv/bin/python bench/webhook_acks.py "
        f"--seconds {args.seconds} --connections {args.connections} --rate {args.rate:.0f} "
        f"--open-seconds {args.open_seconds:.0f} --workers {args.workers} --threads {args.threads}"
    )


if __name__ == "__main__":
    main()
