# Local tools only; the SQL is built from model metadata and constants, never from input.
"""A full reconciliation of 100,000 subscriptions at 1% drift, end to end, at RECONCILIATION_STRIPE_RPS=20.

Starts its own Stripe sandbox on 127.0.0.1, creates N customers with a subscription each there in bulk
(no events, backdated over a year), and our rows in step with them with COPY (SubscriptionRecord with
Stripe's object as its snapshot, as a webhook leaves it, and a linked BillingCustomer per user).
Then 1% of the subscriptions drift behind our back through the sandbox's silent changes (half
canceled, 40% re-priced, 10% with their period end moved), and one customer in 10,000 loses its
user metadata. Then `reconcile(mode="full")` runs for the project, timed, and the script prints:
- wall time, and the floor the rate cap sets (Stripe requests / RPS) with the ratio of the two;
- Stripe requests counted by the run and by the sandbox (GET /_sandbox/requests, by route);
- database writes: the run's db_writes, and rows inserted/updated/deleted per table from
  pg_stat_user_tables (the database must be otherwise idle: use a throwaway one);
- where the run's time goes (listing pages through the gateway, pacing, converting SDK objects,
  comparing and recording, corrections), and the raw JSON listing of the same objects for reference.
It exits 1 when the run did not find exactly the drift it made.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<throwaway> \\
        .venv/bin/python bench/reconciliation_full.py [--subscriptions 100000] [--rps 20] [--profile FILE]

`--raw-listing` patches, for this process only, the gateway's list_page that the run calls with one
that reads pages as JSON through the SDK's `raw_request` (the change proposed in bench/README.md),
to measure it without touching apps/.

The database is DATABASE_URL or --database-url (migrated when a migration is unapplied). The project's
rows are deleted at the end unless --keep. Target: <= 5 minutes for 100,000 subscriptions.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stripe  # noqa: E402

from stripe_sandbox.testing import SandboxProcess  # noqa: E402 - after the path is set

SLUG = "bench-reconcile"
DAY = 86400


# --- setup ------------------------------------------------------------------------------------------
def setup(database_url: str, sandbox: SandboxProcess, rps: float) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "billing_service.settings",
            "DJANGO_ENV": "development",
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "STRIPE_API_HOST": sandbox.base_url,
            "STRIPE_SECRET_KEY": sandbox.api_key,
            "RECONCILIATION_STRIPE_RPS": str(rps),
            # The run's counters go to files of this run only, not to var/'s shared directory.
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-reconcile-metrics-"),
        }
    )
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    # Read by apps/reconciliation/config.py at call time, whether or not settings.py reads the variable.
    settings.RECONCILIATION_STRIPE_RPS = rps
    if connection.vendor != "postgresql":
        raise SystemExit("this benchmark needs PostgreSQL (DATABASE_URL=postgres://...)")


def cleanup() -> None:
    """Deletes the benchmark project's rows."""
    from apps.catalog.models import PriceFeature
    from apps.checkout.models import BillingCustomer
    from apps.common.models import AuditLog
    from apps.entitlements.models import Entitlement, SubscriptionRecord
    from apps.projects.models import App
    from apps.reconciliation.models import Discrepancy, ReconciliationRun, SyncCursor, SyncCursorPage
    from bench import common

    common.project_rows_delete(
        SLUG,
        (
            SyncCursor,
            Discrepancy,
            ReconciliationRun,
            AuditLog,
            Entitlement,
            SubscriptionRecord,
            BillingCustomer,
            PriceFeature,
            App,
        ),
        children=((SyncCursorPage, "cursor_id", SyncCursor),),
    )


def raw_listing(sandbox: SandboxProcess, path: str, params: dict[str, str]) -> Iterator[list[dict[str, Any]]]:
    """Pages of a list endpoint read as plain JSON (urllib + json.loads): the reference for the SDK."""
    after = ""
    while True:
        query = {**params, "limit": "100", **({"starting_after": after} if after else {})}
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            f"{sandbox.base_url}{path}?{urllib.parse.urlencode(query)}",
            headers={"Authorization": f"Bearer {sandbox.api_key}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            page = json.loads(response.read())
        yield page["data"]
        if not page["has_more"] or not page["data"]:
            return
        after = page["data"][-1]["id"]


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def subscription_row(project: Any, obj: dict[str, Any]) -> Any:
    """Our record of a Stripe subscription as a webhook would have left it (what the comparer reads)."""
    from apps.entitlements.models import SubscriptionRecord

    items = obj["items"]["data"]
    return SubscriptionRecord(
        project=project,
        user_id=obj["metadata"]["user_id"],
        stripe_subscription_id=obj["id"],
        stripe_customer_id=obj["customer"],
        status=obj["status"],
        price_ids=sorted({item["price"]["id"] for item in items}),
        current_period_start=_ts(min(item["current_period_start"] for item in items)),
        current_period_end=_ts(max(item["current_period_end"] for item in items)),
        cancel_at_period_end=bool(obj["cancel_at_period_end"]),
        canceled_at=_ts(obj.get("canceled_at")),
        ended_at=_ts(obj.get("ended_at")),
        last_event_created=int(obj["created"]),
        last_event_id=f"bench:{obj['id']}",
        stripe_data=obj,
    )


def copy_insert(model: Any, objects: Iterable[Any]) -> int:
    """Inserts unsaved model instances with COPY (a fraction of bulk_create's time at 100,000 rows).

    Every concrete column but the id, each value prepared as the ORM would save it (JSON included);
    auto_now(_add) columns get the current time, which the ORM's pre_save would have set.
    """
    from django.db import connection
    from django.utils import timezone

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    count = 0
    with connection.cursor() as cursor, cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
        for obj in objects:
            row = []
            for f in fields:
                value = now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else None
                value = value if value is not None else getattr(obj, f.attname)
                row.append(f.get_db_prep_save(value, connection))
            copy.write_row(row)
            count += 1
    return count


def seed(sandbox: SandboxProcess, count: int) -> dict[str, Any]:
    """N subscriptions at the sandbox and our rows in step with them; the raw listing times."""
    from django.db import connection

    from apps.catalog.models import PriceFeature
    from apps.checkout.models import BillingCustomer
    from apps.entitlements.models import SubscriptionRecord
    from apps.projects.services import project_create

    project = project_create(name="Bench reconcile", slug=SLUG)
    started = time.monotonic()
    made = sandbox.bulk_subscriptions(count, metadata={"project": SLUG}, user_prefix="bench_user_", backdate_days=365)
    print(f"sandbox: {count} customers with a subscription each in {time.monotonic() - started:.1f} s", flush=True)

    started = time.monotonic()
    listed = copy_insert(
        SubscriptionRecord,
        (
            subscription_row(project, obj)
            for page in raw_listing(sandbox, "/v1/subscriptions", {"status": "all"})
            for obj in page
        ),
    )
    seeded_subscriptions = time.monotonic() - started
    copy_insert(
        BillingCustomer,
        (
            BillingCustomer(project=project, user_id=user, stripe_customer_id=customer)
            for user, customer in zip(made["users"], made["customers"], strict=True)
        ),
    )
    seeded = time.monotonic() - started
    print(
        f"ours: {listed} subscription records (listed as raw JSON and copied in {seeded_subscriptions:.1f} s) "
        f"and {count} linked customers, {seeded:.1f} s in all",
        flush=True,
    )

    # The reference: the same listings as plain JSON, nothing else done with the pages.
    raw: dict[str, float] = {}
    for name, path, params in (
        ("subscription", "/v1/subscriptions", {"status": "all"}),
        ("customer", "/v1/customers", {}),
    ):
        started = time.monotonic()
        pages = sum(1 for _ in raw_listing(sandbox, path, params))
        raw[name] = time.monotonic() - started
        print(f"reference: {pages} pages of {name}s read as raw JSON (urllib + json.loads) in {raw[name]:.1f} s")

    client = stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.base_url})
    other_price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 4000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Team"},
        }
    ).id
    PriceFeature.objects.create(project=project, stripe_price_id=made["price"], feature_code="pro")
    PriceFeature.objects.create(project=project, stripe_price_id=other_price, feature_code="team")
    with connection.cursor() as cursor:
        for model in (SubscriptionRecord, BillingCustomer):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return {"project": project, "made": made, "other_price": other_price, "raw": raw}


def drift(sandbox: SandboxProcess, world: dict[str, Any], share: float) -> Counter[str]:
    """Silent changes (no events) to `share` of the subscriptions, spread over the whole listing."""
    subscriptions, customers = world["made"]["subscriptions"], world["made"]["customers"]
    drifting = max(1, round(len(subscriptions) * share))
    step = len(subscriptions) // drifting
    expected: Counter[str] = Counter()
    started = time.monotonic()
    for n in range(drifting):
        sub = subscriptions[n * step + step // 2]
        if n % 10 < 5:
            sandbox.silent_cancel(sub)
            expected["subscription_status"] += 1
        elif n % 10 < 9:
            sandbox.silent_reprice(sub, world["other_price"])
            expected["subscription_items"] += 1
        else:
            sandbox.silent_move_period_end(sub, int(time.time()) + 90 * DAY)
            expected["subscription_period_end"] += 1
    for n in range(max(1, len(customers) // 10_000)):
        sandbox.silent_metadata(customers[min(n * 10_000 + 5_000, len(customers) - 1)], {"user_id": ""})
        expected["customer_mapping"] += 1
    print(
        f"drift: {sum(expected.values())} silent changes in {time.monotonic() - started:.1f} s: {dict(expected)}",
        flush=True,
    )
    return expected


# --- measuring ---------------------------------------------------------------------------------------
def table_counters() -> dict[str, tuple[int, int, int]]:
    """(inserted, updated, deleted) rows per table so far, from a fresh session (ours is closed first,
    so that its statistics are flushed)."""
    from django.db import connection

    connection.close()
    time.sleep(1.5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")
        rows = {name: (ins, upd, dele) for name, ins, upd, dele in cursor.fetchall()}
    connection.close()
    return rows


class Timers:
    """Wall time spent in a few functions of the run (wrapped here only, the engine is unchanged)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._undo: list[Callable[[], None]] = []
        self.labels: list[str] = []  # in the order they were wrapped

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        if label not in self.labels:
            self.labels.append(label)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def undo(self) -> None:
        for undo in reversed(self._undo):
            undo()


def raw_list_page(
    *,
    project_slug: str | None,
    object_type: str,
    params: dict[str, Any],
    starting_after: str | None = None,
    limit: int = 100,
    before_request: Callable[[], None] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """`--raw-listing`: the change proposed for apps/common/stripe_gateway/operations.py::list_page,
    measured here without touching it. The same client, retries, pacing and error mapping
    (call_stripe), but the page is read as JSON (`raw_request` + json.loads) instead of being built
    into typed StripeObjects and converted back to dicts (as_dict)."""
    from apps.common.stripe_gateway.client import call_stripe, stripe_client

    client = stripe_client(project_slug=project_slug)
    path = "/v1/" + {"payment_intent": "payment_intents"}.get(object_type, object_type + "s")
    page_params = {**params, "limit": limit, **({"starting_after": starting_after} if starting_after else {})}

    def attempt() -> Any:
        if before_request is not None:
            before_request()
        return client.raw_request("get", path, **page_params)

    page = json.loads(call_stripe(f"{object_type}.list", attempt).body)
    return page["data"], bool(page["has_more"])


def instrument(*, raw: bool) -> Timers:
    from apps.common.stripe_gateway import operations
    from apps.reconciliation import listing, services
    from apps.reconciliation.comparers import COMPARERS

    timers = Timers()
    if raw:
        setattr(listing, "list_page", raw_list_page)  # noqa: B010 - patched for this run only
    timers.wrap(listing, "list_page", "list pages through the gateway (HTTP, parsing, pacing)")
    timers.wrap(listing.TokenBucket, "acquire", "  of which pacing (RPS token bucket)")
    timers.wrap(operations, "as_dict", "  of which SDK object -> dict (as_dict)")
    timers.wrap(services, "owned_objects", "which objects are the project's")
    timers.wrap(services._Execution, "compare", "compare and record (incl. corrections)")
    for comparer in COMPARERS:
        timers.wrap(comparer, "correct", "  of which corrections")
    timers.wrap(listing.CursorPass, "checkpoint", "checkpoints")
    timers.wrap(services._Execution, "record_missing", "missing at Stripe (retrieves)")
    return timers


def main() -> None:
    from bench.common import migrate_if_needed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--drift", type=float, default=0.01, help="share of subscriptions changed silently")
    parser.add_argument("--rps", type=float, default=20.0, help="RECONCILIATION_STRIPE_RPS")
    parser.add_argument("--profile", help="write a cProfile of the run here and print its top functions")
    parser.add_argument(
        "--raw-listing",
        action="store_true",
        help="list pages as raw JSON (the proposed gateway change, patched in for this run only)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the rows in the database")
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("give a throwaway database: DATABASE_URL=postgres://... or --database-url")

    with SandboxProcess.start(startup_timeout=30) as sandbox:
        setup(args.database_url, sandbox, args.rps)
        migrate_if_needed()
        cleanup()
        try:
            run_benchmark(sandbox, args)
        finally:
            if not args.keep:
                cleanup()


def run_benchmark(sandbox: SandboxProcess, args: argparse.Namespace) -> None:
    from apps.reconciliation.models import Discrepancy
    from apps.reconciliation.services import reconcile

    world = seed(sandbox, args.subscriptions)
    expected = drift(sandbox, world, args.drift)
    project = world["project"]

    before = table_counters()
    sandbox.reset_request_stats()
    timers = instrument(raw=args.raw_listing)
    pages = Counter[str]()
    started = time.monotonic()

    def progress(message: str) -> None:
        if ": page " in message:
            kind = message.split("] ", 1)[1].split(":", 1)[0]
            pages[kind] += 1
            if pages[kind] % 200 == 0:
                print(f"  {time.monotonic() - started:6.1f} s  {kind}: {pages[kind]} pages", flush=True)

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    (run,) = reconcile(project=project, mode="full", days_back=None, dry_run=False, trigger="manual", progress=progress)
    wall = time.monotonic() - started
    if profiler is not None:
        profiler.disable()
    timers.undo()
    stats = sandbox.request_stats()
    after = table_counters()

    print()
    print(f"run #{run.pk}: {run.status} {run.error}")
    by_kind = dict(run.summary.get("by_kind", {}))
    print(
        f"drift: found {by_kind}, expected {dict(expected)}; corrected {run.summary['corrected']}, "
        f"left open {run.summary['left_open']}, errors {run.summary['errors']}"
    )
    open_rows = Discrepancy.objects.filter(project=project, status="open").count()
    print(f"checked: {json.dumps({t: c['checked'] for t, c in run.counts.items()})}; open discrepancies {open_rows}")
    floor = max(0.0, (run.stripe_requests - args.rps) / args.rps)  # one second's worth is a free burst
    print()
    print(f"wall time:        {wall:7.1f} s  (run.duration_ms {(run.duration_ms or 0) / 1000:.1f} s)")
    print(
        f"rate-cap floor:   {floor:7.1f} s  = ({run.stripe_requests} requests - {args.rps:g} burst) / {args.rps:g} "
        f"RPS; wall / floor = {wall / floor:.2f}"
        if floor
        else "rate-cap floor: 0"
    )
    print(
        f"Stripe requests:  run {run.stripe_requests}, sandbox {stats['total']} {json.dumps(stats['by_route'])}"
        f" faulted {json.dumps(stats['faulted'])}"
    )
    changed = {
        table: tuple(a - b for a, b in zip(after[table], before.get(table, (0, 0, 0)), strict=True)) for table in after
    }
    changed = {table: delta for table, delta in changed.items() if any(delta)}
    total = [sum(delta[i] for delta in changed.values()) for i in range(3)]
    print(
        f"database writes:  run.db_writes {run.db_writes}; rows inserted {total[0]}, updated {total[1]}, "
        f"deleted {total[2]} (pg_stat_user_tables)"
    )
    for table, (ins, upd, dele) in sorted(changed.items(), key=lambda item: -sum(item[1])):
        print(f"    {table:40s} +{ins:<7d} ~{upd:<7d} -{dele:<7d}")
    print()
    print("where the time goes (wall seconds, calls):")
    for label in timers.labels:
        print(f"    {label:60s} {timers.seconds[label]:7.1f} s  {timers.calls[label]:7d}")
    raw = world["raw"]
    print(f"    {'reference: the same listings as raw JSON, no pacing':60s} {sum(raw.values()):7.1f} s")
    if profiler is not None:
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(20)
    if run.status != "succeeded" or Counter(by_kind) != expected:
        raise SystemExit("the run did not find exactly the drift that was made")


if __name__ == "__main__":
    main()
