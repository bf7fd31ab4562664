# Local tools only; the SQL is built from model metadata and constants, never from input.
"""The hosted-session sweep's database work over 100,000 sessions on PostgreSQL.

Seeds N CheckoutSession rows of one project (half `open` an hour past expires_at, half `expired` two
days ago, each with its own open invoice), then times apps.recovery.sweeps.sweep_hosted_sessions
over `--runs` runs. Before each run the rows are put back in their seeded state and the table is
vacuumed and analysed, so that every run starts from the same table. Each run must expire N/2 and
abandon N/2 (checked). Target: <= 10 s per sweep.

    .venv/bin/python bench/session_sweep.py [--database-url postgres://...] [--sessions 100000] [--runs 3]

The database is DATABASE_URL, or --database-url, default the benchmarks' `billing_bench` (migrated if a
migration is unapplied). The rows are deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/billing_bench"
SLUG = "bench-sweep"
OPEN_MARK = "bench-sweep-open"  # stripe_price_id (unused by invoice sessions) tells the halves apart
EXPIRED_MARK = "bench-sweep-expired"
CHUNK = 5000


def setup(database_url: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "billing_service.settings",
            "DJANGO_ENV": "development",
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            # The sweep's counters go to files of this run only, not to var/'s shared directory.
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-sweep-metrics-"),
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("the sweep benchmark needs PostgreSQL (give --database-url postgres://...)")


def cleanup() -> None:
    """Deletes the benchmark's rows."""
    from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
    from bench import common

    common.project_rows_delete(SLUG, (CheckoutSession, Invoice, BillingCustomer))


def seed(count: int, now: datetime) -> int:
    """N invoices and N sessions of the bench project; returns the project id."""
    from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
    from apps.projects.services import project_create

    project = project_create(name="Bench sweep", slug=SLUG)
    customer = BillingCustomer.objects.create(project=project, user_id="bench_sweep_user")
    started = time.monotonic()
    invoices = Invoice.objects.bulk_create(
        (
            Invoice(
                project=project,
                customer=customer,
                user_id=customer.user_id,
                currency="usd",
                status=Invoice.Status.OPEN,
                subtotal=2610,
                total=2610,
            )
            for _ in range(count)
        ),
        batch_size=CHUNK,
    )
    sessions = (
        CheckoutSession(
            project=project,
            customer=customer,
            user_id=customer.user_id,
            mode=CheckoutSession.Mode.PAYMENT,
            stripe_price_id=OPEN_MARK if n % 2 else EXPIRED_MARK,
            invoice=invoice,
            success_url="https://bench.example/paid",
            cancel_url="https://bench.example/invoice",
            status=CheckoutSession.Status.OPEN if n % 2 else CheckoutSession.Status.EXPIRED,
            stripe_session_id=f"cs_bench_sweep_{n}",
            expires_at=now - timedelta(hours=1) if n % 2 else now - timedelta(days=2, hours=1),
            expired_at=None if n % 2 else now - timedelta(days=2),
        )
        for n, invoice in enumerate(invoices)
    )
    CheckoutSession.objects.bulk_create(sessions, batch_size=CHUNK)
    print(f"seeded {count} invoices and {count} sessions in {time.monotonic() - started:.1f} s", flush=True)
    return project.pk


def reset(project_id: int, now: datetime) -> None:
    """Puts every row back in its seeded state, then VACUUM ANALYZE: each run starts alike."""
    from django.db import connection

    from apps.checkout.models import CheckoutSession

    sessions = CheckoutSession.objects.filter(project_id=project_id)
    sessions.filter(stripe_price_id=OPEN_MARK).update(
        status=CheckoutSession.Status.OPEN, expired_at=None, abandoned_at=None, updated_at=now
    )
    sessions.filter(stripe_price_id=EXPIRED_MARK).update(
        status=CheckoutSession.Status.EXPIRED, expired_at=now - timedelta(days=2), abandoned_at=None, updated_at=now
    )
    with connection.cursor() as cursor:
        for table in ("checkout_checkoutsession", "checkout_invoice"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="Override sweeps.BATCH_SIZE.")
    parser.add_argument("--keep", action="store_true", help="Leave the seeded rows in the database.")
    args = parser.parse_args()
    metrics_dir = ""
    try:
        setup(args.database_url)
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        run(args)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    from django.db import connection
    from django.utils import timezone

    from apps.recovery import sweeps
    from apps.recovery.config import recovery_settings
    from bench.common import migrate_if_needed

    migrate_if_needed()
    if args.batch_size:
        sweeps.BATCH_SIZE = args.batch_size
    half = args.sessions // 2
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    print(
        f"PostgreSQL {version}, {os.cpu_count()} CPUs (shared); "
        f"database {connection.settings_dict['NAME']}; "
        f"{args.sessions} sessions: {args.sessions - half} open past expiry, {half} expired 2 days ago with open "
        f"invoices; batch {sweeps.BATCH_SIZE}; abandon after {recovery_settings().abandon_after_seconds} s",
        flush=True,
    )
    cleanup()
    now = timezone.now()
    project_id = seed(args.sessions, now)
    figures: list[float] = []
    try:
        for number in range(1, args.runs + 1):
            reset(project_id, now)
            steps: dict[str, float] = {}
            started = time.monotonic()

            def progress(step: str, _: int, started: float = started, steps: dict[str, float] = steps) -> None:
                steps[step] = time.monotonic() - started

            counts = sweeps.sweep_hosted_sessions(now=now, progress=progress)
            elapsed = time.monotonic() - started
            expected = {"expired": args.sessions - half, "abandoned": half, "dry_run": False}
            if counts != expected:
                raise SystemExit(f"run {number}: counted {counts}, expected {expected}")
            figures.append(elapsed)
            expire_part = steps.get("expired", 0.0)
            print(
                f"run {number}: {elapsed:.2f} s ({counts['expired']} expired in {expire_part:.2f} s, "
                f"{counts['abandoned']} abandoned in {elapsed - expire_part:.2f} s)",
                flush=True,
            )
    finally:
        if not args.keep:
            cleanup()
    print(
        f"sweep of {args.sessions} sessions: " + ", ".join(f"{f:.2f} s" for f in figures) + " (target <= 10 s)",
        flush=True,
    )
    print(
        f"reproduce: .venv/bin/python bench/session_sweep.py --database-url {args.database_url} "
        f"--sessions {args.sessions} --runs {args.runs}"
        + (f" --batch-size {args.batch_size}" if args.batch_size else "")
    )


if __name__ == "__main__":
    main()
