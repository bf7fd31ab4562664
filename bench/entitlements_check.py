"""The entitlement check against a bare Django JSON view, on one gunicorn, in one run.

(1) closed-loop max throughput of each (wrk, same connections, alternating rounds) -> check/bare;
(2) open-loop latency of each at a fixed rate (bench/loadgen.py, coordinated omission counted);
plus, during the check's wrk rounds, the PostgreSQL transactions and Redis commands per request.

    .venv/bin/python bench/entitlements_check.py [--seconds 5] [--rounds 2] [--connections 16]
        [--rate 500] [--open-seconds 15] [--workers 2] [--threads 4]

Server: gunicorn gthread, DJANGO_ENV=development with DJANGO_DEBUG=false, LOG_LEVEL=WARNING,
API_RATE_LIMIT=10000000/min (so the throttle counts but never refuses); see bench/common.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.loadgen import Request, open_loop

USER = "bench_user"


def seed() -> int:
    from apps.entitlements.grants import grant_create
    from apps.entitlements.selectors import entitlement_check
    from apps.projects.models import Project

    project_id = common.seed_tenant()
    active, _ = entitlement_check(project_id=project_id, user_id=USER, feature_code=common.BENCH_FEATURE)
    if not active:
        grant_create(
            project=Project.objects.get(pk=project_id),
            user_id=USER,
            feature_code=common.BENCH_FEATURE,
            granted_by="bench",
            reason="benchmark",
        )
    return project_id


def get_json(url: str, headers: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - 127.0.0.1 only
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        result: dict[str, object] = json.loads(response.read())
        return result


def same_request(request: Request) -> Callable[[int], Request]:
    return lambda _i: request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5, help="per wrk round and endpoint")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--open-seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    common.ensure_database()
    common.django_setup()
    project_id = seed()
    check_url = (
        f"{common.BASE_URL}/api/v1/entitlements/check?user_id={USER}&project_id={project_id}"
        f"&feature_code={common.BENCH_FEATURE}"
    )
    bare_url = f"{common.BASE_URL}/bench/bare"
    key = {"X-API-Key": common.BENCH_KEY}
    urls = {"bare": (bare_url, {}), "check": (check_url, key)}

    with common.gunicorn(args.workers, args.threads) as server:
        answer = get_json(check_url, key)
        assert answer.get("active") is True, answer
        assert get_json(bare_url, {}) == {"ok": True}
        for url, headers in urls.values():  # warm every worker and thread: caches, connections
            common.wrk(url, seconds=2, connections=args.connections, headers=headers)

        totals = {name: [0, 0.0] for name in urls}
        db_xacts = db_tuples = redis_cmds = 0
        for _ in range(args.rounds):
            for name, (url, headers) in urls.items():
                if name == "check":
                    xacts0, tuples0 = common.pg_counters()
                    redis0 = common.redis_commands_processed()
                result = common.wrk(url, seconds=args.seconds, connections=args.connections, headers=headers)
                if name == "check":
                    redis_cmds += common.redis_commands_processed() - redis0
                    xacts1, tuples1 = common.pg_counters()
                    db_xacts += xacts1 - xacts0  # includes the counter queries themselves
                    db_tuples += tuples1 - tuples0
                print(f"  wrk {name:5s} {result.line()}", flush=True)
                totals[name][0] += result.requests
                totals[name][1] += result.seconds
        rps = {name: count / secs for name, (count, secs) in totals.items()}

        latency = {}
        for name, (url, headers) in urls.items():
            latency[name] = open_loop(
                same_request(("GET", url, headers, None)), rate=args.rate, duration=args.open_seconds
            )
        workers = server.worker_pids()

    checks = int(totals["check"][0])
    ratio = rps["check"] / rps["bare"]
    print()
    print(f"entitlement check vs bare JSON view, {dt.date.today()}, {common.machine_note()}")
    print(f"gunicorn gthread --workers {args.workers} --threads {args.threads} (worker pids {workers})")
    print(f"closed loop (wrk -c{args.connections}, {args.rounds}x{args.seconds}s alternating):")
    print(f"  bare  {rps['bare']:8.0f} req/s")
    print(f"  check {rps['check']:8.0f} req/s   ratio check/bare = {ratio:.2f}  (target >= 0.80)")
    print(
        f"  during {checks} checks: {db_xacts} PostgreSQL transactions (incl. {2 * args.rounds} of the probe),"
        f" {db_tuples} tuples returned (want ~0);"
    )
    print(f"  Redis commands (server-wide) {redis_cmds} = {redis_cmds / checks:.2f} per check")
    print(f"open loop at {args.rate:.0f} req/s for {args.open_seconds:.0f}s (latency from the scheduled send time):")
    for name, measured in latency.items():
        print(f"  {name:5s} {measured.line()}")
    print(f"  check p99 {latency['check'].p99_ms:.2f} ms (target <= 10 ms)")
    print(
        "reproduce: .venv/bin/python bench/entitlements_check.py "
        f"--seconds {args.seconds} --rounds {args.rounds} --connections {args.connections} --rate {args.rate:.0f} "
        f"--open-seconds {args.open_seconds:.0f} --workers {args.workers} --threads {args.threads}"
    )


if __name__ == "__main__":
    main()
