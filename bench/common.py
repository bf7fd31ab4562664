# Local tools (psql, redis-cli, wrk, gunicorn) run with fixed arguments and constant SQL.
# ruff: noqa: S603, S607, S608
"""Shared pieces of the HTTP and worker benchmarks: environment, database, gunicorn, wrk, counters.

Everything runs on 127.0.0.1: PostgreSQL database `billing_bench`, Redis db 11 (cache) and db 10
(Celery broker). The server runs with DJANGO_ENV=development, DJANGO_DEBUG=false, LOG_LEVEL=WARNING
and API_RATE_LIMIT=10000000/min (the throttle still runs its Redis calls, it just never says no).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
HOST = "127.0.0.1"
PORT = 8765
BASE_URL = f"http://{HOST}:{PORT}"
DB_NAME = "billing_bench"
PG_ADMIN = f"postgres://postgres@{HOST}:5432/postgres"
WEBHOOK_SECRET = "whsec_bench_secret"  # noqa: S105 - a local benchmark signing secret
BENCH_KEY = "bk_bench000_benchmark-key-not-a-secret-0123456789"

ENV: dict[str, str] = {
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DATABASE_URL": f"postgres://postgres@{HOST}:5432/{DB_NAME}",
    "REDIS_URL": f"redis://{HOST}:6379/11",
    "CELERY_BROKER_URL": f"redis://{HOST}:6379/10",
    "CELERY_TASK_ALWAYS_EAGER": "false",
    "DJANGO_ENV": "development",
    "DJANGO_DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "API_RATE_LIMIT": "10000000/min",
    "STRIPE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
    "STRIPE_SECRET_KEY": "sk_test_bench_never_used",
    "STRIPE_API_HOST": f"http://{HOST}:9",  # nothing listens: a handler calling Stripe would fail loudly
}


def child_env() -> dict[str, str]:
    return {**os.environ, **ENV}


def django_setup() -> None:
    """Configures Django in this process with the benchmark environment (for seeding and polling)."""
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-h", HOST, "-U", "postgres", "-d", db, "-tAc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def ensure_database() -> None:
    """Creates billing_bench if missing and migrates only when a migration is unapplied."""
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'") != "1":
        psql(f"CREATE DATABASE {DB_NAME}")
    manage = [str(VENV_BIN / "python"), str(ROOT / "manage.py")]
    check = subprocess.run([*manage, "migrate", "--check"], env=child_env(), capture_output=True, cwd=ROOT)
    if check.returncode != 0:
        print("migrating billing_bench (about a minute on a fresh database)...", flush=True)
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=child_env(), check=True, cwd=ROOT)


def redis_cmd(db: int, *args: str) -> str:
    out = subprocess.run(["redis-cli", "-h", HOST, "-n", str(db), *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def redis_commands_processed() -> int:
    info = redis_cmd(0, "INFO", "stats")
    match = re.search(r"total_commands_processed:(\d+)", info)
    return int(match.group(1)) if match else 0


def pg_counters() -> tuple[int, int]:
    """(transactions, tuples returned) of billing_bench so far (stats lag by up to a second)."""
    time.sleep(1.2)
    row = psql(f"SELECT xact_commit + xact_rollback, tup_returned FROM pg_stat_database WHERE datname = '{DB_NAME}'")
    xacts, tuples = row.split("|")
    return int(xacts), int(tuples)


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    workers: int
    threads: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]


@contextmanager
def gunicorn(workers: int = 2, threads: int = 4) -> Iterator[Server]:
    """The real WSGI app under bench.settings (real settings, real urls plus /bench/bare)."""
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "billing_service.wsgi:application",
        f"--bind={HOST}:{PORT}",
        f"--workers={workers}",
        f"--threads={threads}",
        "--worker-class=gthread",
        "--backlog=2048",
        "--keep-alive=30",
        "--log-level=warning",
    ]
    process = subprocess.Popen(cmd, env=child_env(), cwd=ROOT)
    try:
        wait_healthy(process, f"{BASE_URL}/health")
        yield Server(process, workers, threads)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    non_2xx: int
    socket_errors: str
    p50_ms: float
    p99_ms: float

    def line(self) -> str:
        return (
            f"{self.rps:8.0f} req/s  ({self.requests} in {self.seconds:.1f}s, closed-loop latency "
            f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, non-2xx {self.non_2xx}{self.socket_errors})"
        )


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    script: str = "",
    script_args: tuple[str, ...] = (),
) -> WrkResult:
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError("benchmarks only send traffic to 127.0.0.1")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if total is None:
        raise RuntimeError(out)
    secs = _ms(total.group(2), total.group(3)) / 1000
    lat = {m.group(1): _ms(m.group(2), m.group(3)) for m in re.finditer(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", out)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=secs,
        rps=int(total.group(1)) / secs,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=f", socket errors: {errors.group(1)}" if errors else "",
        p50_ms=lat.get("50", float("nan")),
        p99_ms=lat.get("99", float("nan")),
    )


def machine_note() -> str:
    return f"{os.cpu_count()} CPUs, shared; client and server on the same host"


BENCH_PROJECT = "bench"
BENCH_PRICE = "price_bench_pro"
BENCH_FEATURE = "pro"


def seed_tenant() -> int:
    """The bench project, its price->feature mapping and an app whose key is BENCH_KEY. Idempotent."""
    from apps.catalog.models import PriceFeature
    from apps.projects.keys import key_from_raw
    from apps.projects.models import App, Project
    from apps.projects.services import api_key_install, project_create

    project = Project.objects.filter(slug=BENCH_PROJECT).first() or project_create(name="Bench", slug=BENCH_PROJECT)
    PriceFeature.objects.get_or_create(
        project=project, stripe_price_id=BENCH_PRICE, defaults={"feature_code": BENCH_FEATURE}
    )
    app, _ = App.objects.get_or_create(project=project, name="bench-app", defaults={"scopes": ["entitlements:read"]})
    api_key_install(app=app, new_key=key_from_raw(BENCH_KEY), label="bench", created_by="bench")
    return project.pk


def subscription_event(event_id: str, user_id: str, *, created: int, period_end: int) -> dict[str, Any]:
    """A customer.subscription.updated event as Stripe sends it (a renewal: a new period end)."""
    start = created - 40 * 86400
    period_start = period_end - 30 * 86400
    subscription = {
        "id": f"sub_{user_id}",
        "object": "subscription",
        "status": "active",
        "customer": f"cus_{user_id}",
        "currency": "eur",
        "collection_method": "charge_automatically",
        "start_date": start,
        "created": start,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "livemode": False,
        "metadata": {"project": BENCH_PROJECT, "user_id": user_id},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{user_id}",
                    "object": "subscription_item",
                    "quantity": 1,
                    "price": {
                        "id": BENCH_PRICE,
                        "object": "price",
                        "currency": "eur",
                        "unit_amount": 1500,
                        "recurring": {"interval": "month", "interval_count": 1},
                        "product": "prod_bench_pro",
                    },
                    "current_period_start": period_start,
                    "current_period_end": period_end,
                }
            ],
        },
    }
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.subscription.updated",
        "api_version": "2026-08-26.dahlia",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {
            "object": subscription,
            "previous_attributes": {"items": {"data": [{"current_period_end": period_start}]}},
        },
    }


def purge_broker_queue() -> None:
    """Drops queued process_event messages left in the benchmark broker (Redis db 10)."""
    redis_cmd(10, "DEL", "celery", "unacked", "unacked_index")


def migrate_if_needed() -> None:
    """Applies missing migrations to the benchmark's database (Django set up already)."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        print("migrating (about a minute on a fresh database) ...", flush=True)
        call_command("migrate", "--noinput", verbosity=0)


def wait_healthy(process: subprocess.Popen[bytes], url: str, *, seconds: float = 60) -> None:
    """Waits until the server just started answers 200 at url; RuntimeError if it died or took too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("gunicorn did not come up")
        time.sleep(0.3)


def project_rows_delete(slug: str, models: tuple[Any, ...], *, children: tuple[tuple[Any, str, Any], ...] = ()) -> None:
    """Deletes a benchmark project and its rows with plain DELETEs, in one transaction.

    The ORM's collector would load every row (hundreds of thousands here) to cascade. `children`:
    (child model, its column naming the parent, parent model) for rows that name the project only
    through a parent, deleted first; then each model's rows `WHERE project_id`, in the order given.
    """
    from django.db import connection, transaction

    from apps.projects.models import Project

    project = Project.objects.filter(slug=slug).first()
    if project is None:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        for child, column, parent in children:
            cursor.execute(
                f"DELETE FROM {child._meta.db_table} WHERE {column} IN "
                f"(SELECT id FROM {parent._meta.db_table} WHERE project_id = %s)",
                [project.pk],
            )
        for model in models:
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE project_id = %s", [project.pk])
    project.delete()
