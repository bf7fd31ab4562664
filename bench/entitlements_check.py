# Local tools (gunicorn, redis-cli, pgrep) run with fixed arguments.
# ruff: noqa: S603, S607
"""The entitlement check against the bare `/health` view, on the shipped gunicorn config, in one run.

    .venv/bin/python bench/entitlements_check.py [--seconds 5] [--rounds 3] [--connections 16]
        [--rate 1000] [--open-seconds 10] [--workers N --threads N] [--port 0]
        [--database billing_bench] [--redis-db 11]

Server: `gunicorn -c docker/gunicorn.conf.py bench.wsgi:application`, i.e. the shipped config (worker
class, workers, threads, keep-alive...), overriding only the bind (127.0.0.1, a free port unless
--port) and the log level (LOG_LEVEL=WARNING); --workers/--threads set WEB_CONCURRENCY and
GUNICORN_THREADS to compare layouts. bench.wsgi adds `/bench/nomw/<path>`: the same view served with
no middleware by the same workers. Environment: bench/common.py (DJANGO_ENV=development,
DJANGO_DEBUG=false, API_RATE_LIMIT=10000000/min so that the throttle counts but never refuses).

Reports, in one run:
(1) closed loop (wrk, same connections, alternating rounds): /health, /bench/nomw/health and the check;
    check/health is the target ratio, 1 - health/nomw the middleware stack's share of a request;
(2) Redis per warm check: MONITOR lines of the benchmark's Redis db during 200 sequential checks,
    commands sent by clients (round trips) apart from those a script runs (INFO is server-wide);
(3) open loop at --rate (bench/loadgen.py, coordinated omission counted): check and /health p50/p99,
    with error counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.loadgen import Request, open_loop

USER = "bench_user"
CONFIG = "docker/gunicorn.conf.py"


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((common.HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def shipped_gunicorn(port: int, workers: int | None, threads: int | None) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn -c docker/gunicorn.conf.py, overriding only the bind and the log level."""
    env = {**common.child_env(), "LOG_LEVEL": "WARNING", "PORT": str(port)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # settings give each run its own under VAR_DIR
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    if threads is not None:
        env["GUNICORN_THREADS"] = str(threads)
    cmd = [str(common.VENV_BIN / "gunicorn"), "-c", CONFIG, f"--bind={common.HOST}:{port}", "bench.wsgi:application"]
    process = subprocess.Popen(cmd, env=env, cwd=common.ROOT)
    try:
        common.wait_healthy(process, f"http://{common.HOST}:{port}/health")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def shipped_layout(workers: int | None, threads: int | None) -> str:
    """The layout docker/gunicorn.conf.py gives (with the overrides, if any)."""
    env = {**os.environ}
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    if threads is not None:
        env["GUNICORN_THREADS"] = str(threads)
    code = (
        "import runpy; c = runpy.run_path('docker/gunicorn.conf.py'); "
        "print(c['worker_class'], c['workers'], c.get('threads', 1))"
    )
    out = subprocess.run(
        [str(common.VENV_BIN / "python"), "-c", code], env=env, cwd=common.ROOT, capture_output=True, text=True
    )
    worker_class, n_workers, n_threads = out.stdout.split()
    return f"{worker_class} --workers {n_workers} --threads {n_threads}"


def redis_commands_per_check(url: str, headers: dict[str, str], db: int, checks: int) -> tuple[float, float]:
    """(commands the clients sent, commands run inside scripts) on the benchmark's db, per check.

    Counted with MONITOR (INFO counters are server-wide, and the Redis is shared): a command a client
    sends is one round trip of that client; a script's own commands show as `lua` lines.
    """
    import redis

    stop = f"bench-monitor-stop-{os.getpid()}"
    counts = {"sent": 0, "lua": 0}
    server = redis.Redis(host=common.HOST, port=6379, db=db)
    ready = threading.Event()

    def watch() -> None:
        with server.monitor() as monitor:
            ready.set()
            while True:
                command = monitor.next_command()
                if stop in command["command"]:
                    return
                if command["db"] == db:
                    counts["lua" if command["client_type"] == "lua" else "sent"] += 1

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(10)
    time.sleep(0.3)
    for _ in range(checks):
        get_json(url, headers)
    server.echo(stop)
    watcher.join(30)
    return counts["sent"] / checks, counts["lua"] / checks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5, help="per wrk round and endpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--open-seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=None, help="default: the shipped config's")
    parser.add_argument("--threads", type=int, default=None, help="default: the shipped config's")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--database", default=common.DB_NAME)
    parser.add_argument("--redis-db", type=int, default=11)
    args = parser.parse_args()

    # Other runs may share the machine: their own database and Redis db keep the counts apart.
    common.DB_NAME = args.database
    common.ENV["DATABASE_URL"] = f"postgres://postgres@{common.HOST}:5432/{args.database}"
    common.ENV["REDIS_URL"] = f"redis://{common.HOST}:6379/{args.redis_db}"
    port = args.port or free_port()
    base = f"http://{common.HOST}:{port}"

    common.ensure_database()
    common.django_setup()
    project_id = seed()
    check_url = (
        f"{base}/api/v1/entitlements/check?user_id={USER}&project_id={project_id}&feature_code={common.BENCH_FEATURE}"
    )
    key = {"X-API-Key": common.BENCH_KEY}
    urls = {"health": (f"{base}/health", {}), "nomw": (f"{base}/bench/nomw/health", {}), "check": (check_url, key)}
    layout = shipped_layout(args.workers, args.threads)

    with shipped_gunicorn(port, args.workers, args.threads) as server:
        answer = get_json(check_url, key)
        assert answer.get("active") is True, answer
        assert get_json(urls["nomw"][0], {}) == get_json(urls["health"][0], {})
        for url, headers in urls.values():  # warm every worker and thread: caches, connections
            common.wrk(url, seconds=2, connections=args.connections, headers=headers)

        totals = {name: [0, 0.0] for name in urls}
        failures = dict.fromkeys(urls, 0)
        for _ in range(args.rounds):
            for name, (url, headers) in urls.items():
                result = common.wrk(url, seconds=args.seconds, connections=args.connections, headers=headers)
                print(f"  wrk {name:6s} {result.line()}", flush=True)
                totals[name][0] += result.requests
                totals[name][1] += result.seconds
                failures[name] += result.non_2xx
        rps = {name: count / secs for name, (count, secs) in totals.items()}
        sent_per_check, scripted_per_check = redis_commands_per_check(check_url, key, args.redis_db, 200)

        latency = {}
        for name in ("check", "health"):
            url, headers = urls[name]
            latency[name] = open_loop(
                same_request(("GET", url, headers, None)), rate=args.rate, duration=args.open_seconds
            )
        workers = sorted(
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(server.pid)],
                capture_output=True,
                text=True,
            ).stdout.split()
        )

    ratio = rps["check"] / rps["health"]
    middleware = 1 - rps["health"] / rps["nomw"]
    print()
    print(f"entitlement check vs /health, {dt.date.today()}, {common.machine_note()}")
    print(f"gunicorn -c {CONFIG}: {layout} ({len(workers)} workers)")
    print(f"closed loop (wrk -c{args.connections}, {args.rounds}x{args.seconds}s alternating), non-2xx {failures}:")
    print(f"  /health (middleware)   {rps['health']:8.0f} req/s")
    print(
        f"  /health (no middleware){rps['nomw']:8.0f} req/s   "
        f"middleware share of a request = {middleware:.0%} (target < 20%)"
    )
    print(f"  check                  {rps['check']:8.0f} req/s   ratio check/health = {ratio:.2f} (target >= 0.80)")
    print(
        f"  Redis per warm check (MONITOR, 200 sequential checks): {sent_per_check:.2f} commands sent"
        f" (= round trips), {scripted_per_check:.2f} run inside the script"
    )
    print(f"open loop at {args.rate:.0f} req/s for {args.open_seconds:.0f}s (latency from the scheduled send time):")
    for name, measured in latency.items():
        print(f"  {name:6s} {measured.line()}")
    print(f"  check p99 {latency['check'].p99_ms:.2f} ms, {latency['check'].errors} errors (target <= 5 ms, 0 errors)")
    flags = (
        "" if args.workers is None and args.threads is None else f" --workers {args.workers} --threads {args.threads}"
    )
    print(
        "reproduce: .venv/bin/python bench/entitlements_check.py "
        f"--seconds {args.seconds} --rounds {args.rounds} --connections {args.connections} --rate {args.rate:.0f} "
        f"--open-seconds {args.open_seconds:.0f}{flags}"
    )


if __name__ == "__main__":
    main()
