# Local tools only; the SQL is built from model metadata and constants, never from input.
# ruff: noqa: S608
"""The admin dashboard's render time over 100,000 subscriptions and 1,000,000 revenue rows.

Fills a throwaway PostgreSQL database (one project, `bench-dashboard`) in bulk with INSERT ... SELECT
over generate_series, server side:
- N subscription records (default 100,000): 85% active, 5% past_due, 5% trialing, 5% canceled (ended
  over the last two years), usd or eur, monthly / quarterly / annual prices, quantities 1-3, created
  over two years; each `stripe_data` a Stripe-like subscription snapshot (~2.5 kB: the items with
  their inline price, and the other fields a snapshot carries), and its narrow `items` copy (the
  one the MRR query reads), as SubscriptionRecord.save() would write it;
- M revenue entries (default 1,000,000) over the last two years: 90% payments, 10% refunds, usd/eur;
- 10,000 processed webhook events and 300 unprocessed ones, 200 open discrepancies of 4 kinds and 2
  reconciliation runs, 2,000 expired invoice sessions (half abandoned, a third of those recovered).
Then renders the dashboard through Django's test client as a staff user with the finance permission:
one warm-up, then 3 timed renders per period, all printed, and the time of each panel's selector.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<throwaway> REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/admin_dashboard.py [--subscriptions 100000] [--revenue 1000000] [--keep]

The database is DATABASE_URL or --database-url (migrated when a migration is unapplied). The rows are
loaded once and reused by later runs (--reload deletes and loads them again). Target: < 300 ms a page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SLUG = "bench-dashboard"
USERNAME = "bench-dashboard-finance"

# The rest of a subscription snapshot, as Stripe sends it: what makes each row's JSON the size it is.
SNAPSHOT_REST: dict[str, Any] = {
    "object": "subscription",
    "application": None,
    "application_fee_percent": None,
    "automatic_tax": {"enabled": False, "disabled_reason": None, "liability": None},
    "billing_cycle_anchor_config": None,
    "billing_thresholds": None,
    "cancel_at": None,
    "cancellation_details": {"comment": None, "feedback": None, "reason": None},
    "collection_method": "charge_automatically",
    "days_until_due": None,
    "default_payment_method": "pm_1QbenchDefaultPaymentMethod",
    "default_source": None,
    "default_tax_rates": [],
    "description": None,
    "discounts": [],
    "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
    "latest_invoice": "in_1QbenchLatestInvoice0000",
    "livemode": False,
    "metadata": {"project": SLUG, "user_id": "user_bench"},
    "next_pending_invoice_item_invoice": None,
    "on_behalf_of": None,
    "pause_collection": None,
    "payment_settings": {
        "payment_method_options": None,
        "payment_method_types": None,
        "save_default_payment_method": "off",
    },
    "pending_invoice_item_interval": None,
    "pending_setup_intent": None,
    "pending_update": None,
    "schedule": None,
    "test_clock": None,
    "transfer_data": None,
    "trial_end": None,
    "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
    "trial_start": None,
}
PRICE_REST: dict[str, Any] = {
    "object": "price",
    "active": True,
    "billing_scheme": "per_unit",
    "custom_unit_amount": None,
    "livemode": False,
    "lookup_key": None,
    "metadata": {},
    "nickname": None,
    "product": "prod_QbenchProduct0001",
    "tax_behavior": "unspecified",
    "tiers_mode": None,
    "transform_quantity": None,
    "type": "recurring",
}


def setup(database_url: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "billing_service.settings",
            "DJANGO_ENV": "development",
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("this benchmark needs PostgreSQL (DATABASE_URL=postgres://...)")


def cleanup() -> None:
    """Deletes the benchmark project's rows."""
    from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
    from apps.entitlements.models import RevenueDay, RevenueEntry, SubscriptionRecord
    from apps.reconciliation.models import Discrepancy, ReconciliationRun
    from apps.recovery.models import RecoveryAttempt
    from apps.webhooks.models import ProcessorEvent
    from bench import common

    common.project_rows_delete(
        SLUG,
        (
            CheckoutSession,
            Invoice,
            BillingCustomer,
            Discrepancy,
            ReconciliationRun,
            ProcessorEvent,
            RevenueEntry,
            RevenueDay,
            SubscriptionRecord,
        ),
        children=((RecoveryAttempt, "session_id", CheckoutSession),),
    )


def load(subscriptions: int, revenue: int) -> None:
    from django.db import connection, transaction

    from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
    from apps.entitlements.models import RevenueDay, RevenueEntry, SubscriptionRecord
    from apps.entitlements.revenue_days import revenue_days_rebuild
    from apps.projects.models import Project
    from apps.reconciliation.models import Discrepancy, ReconciliationRun
    from apps.recovery.models import RecoveryAttempt
    from apps.webhooks.models import ProcessorEvent

    project = Project.objects.create(slug=SLUG, name="Bench dashboard")
    pid = project.pk
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        # Subscriptions: i % 20 picks the status (17 active, 1 past_due, 1 trialing, 1 canceled), i % 3 the
        # interval, i % 2 the currency, i % 3 + 1 the quantity.
        cursor.execute(
            f"""
            INSERT INTO {SubscriptionRecord._meta.db_table}
                (project_id, user_id, stripe_subscription_id, stripe_customer_id, status, price_ids,
                 current_period_start, current_period_end, cancel_at_period_end, canceled_at, ended_at,
                 past_due_since, last_event_created, last_event_id, stripe_data, items,
                 mrr_currency, mrr_numerator, mrr_denominator, mrr_items, created_at, updated_at)
            SELECT %(pid)s, 'user_' || i, 'sub_bench' || i, 'cus_bench' || i, s.status,
                   jsonb_build_array(s.price), now() - interval '10 days', now() + interval '20 days', false,
                   CASE WHEN s.status = 'canceled' THEN s.ended END, CASE WHEN s.status = 'canceled' THEN s.ended END,
                   CASE WHEN s.status = 'past_due' THEN now() - interval '2 days' END, 0, 'evt_bench' || i,
                   %(rest)s::jsonb || jsonb_build_object(
                       'id', 'sub_bench' || i, 'customer', 'cus_bench' || i, 'status', s.status,
                       'created', extract(epoch from s.created)::bigint,
                       'start_date', extract(epoch from s.created)::bigint,
                       'items', jsonb_build_object('object', 'list', 'has_more', false, 'data', jsonb_build_array(
                           jsonb_build_object(
                               'id', 'si_bench' || i, 'object', 'subscription_item', 'quantity', i %% 3 + 1,
                               'current_period_start', extract(epoch from now() - interval '10 days')::bigint,
                               'current_period_end', extract(epoch from now() + interval '20 days')::bigint,
                               'price', %(price_rest)s::jsonb || jsonb_build_object(
                                   'id', s.price, 'currency', s.currency,
                                   'unit_amount', (ARRAY[1900, 4900, 19000])[i %% 3 + 1],
                                   'recurring', jsonb_build_object(
                                       'interval', (ARRAY['month', 'month', 'year'])[i %% 3 + 1],
                                       'interval_count', (ARRAY[1, 3, 1])[i %% 3 + 1],
                                       'usage_type', 'licensed')))))),
                   jsonb_build_array(jsonb_build_object(
                       'price', s.price, 'currency', s.currency,
                       'unit_amount', (ARRAY[1900, 4900, 19000])[i %% 3 + 1],
                       'interval', (ARRAY['month', 'month', 'year'])[i %% 3 + 1],
                       'interval_count', (ARRAY[1, 3, 1])[i %% 3 + 1], 'quantity', i %% 3 + 1)),
                   -- subscription_mrr(): monthly n x 12 / 12, quarterly n x 12 / 36, annual n x 1 / 12
                   s.currency, (ARRAY[1900, 4900, 19000])[i %% 3 + 1] * (i %% 3 + 1) * (ARRAY[12, 12, 1])[i %% 3 + 1],
                   (ARRAY[12, 36, 12])[i %% 3 + 1], 1,
                   s.created, s.created
            FROM generate_series(1, %(n)s) AS i,
            LATERAL (SELECT
                CASE i %% 20 WHEN 0 THEN 'canceled' WHEN 1 THEN 'trialing' WHEN 2 THEN 'past_due' ELSE 'active' END
                    AS status,
                (ARRAY['usd', 'eur'])[i %% 2 + 1] AS currency,
                'price_bench_' || (i %% 3) || '_' || (i %% 2) AS price,
                now() - (i %% 730) * interval '1 day' - (i %% 86400) * interval '1 second' AS created,
                now() - (i %% 700) * interval '1 day' AS ended) AS s
            """,
            {"pid": pid, "n": subscriptions, "rest": json.dumps(SNAPSHOT_REST), "price_rest": json.dumps(PRICE_REST)},
        )
        cursor.execute(
            f"""
            INSERT INTO {RevenueEntry._meta.db_table}
                (project_id, kind, user_id, stripe_object_id, stripe_charge_id, stripe_payment_intent_id, amount,
                 currency, occurred_at, created_at)
            SELECT %(pid)s, CASE WHEN i %% 10 = 0 THEN 'refund' ELSE 'payment' END, 'user_' || (i %% 100000),
                   CASE WHEN i %% 10 = 0 THEN 'ch_bench' || i || '@' || (i %% 5000 + 100) ELSE 'pi_bench' || i END,
                   'ch_bench' || i, 'pi_bench' || i,
                   CASE WHEN i %% 10 = 0 THEN i %% 5000 + 100 ELSE (ARRAY[1900, 4900, 19000])[i %% 3 + 1] END,
                   (ARRAY['usd', 'eur'])[i %% 2 + 1],
                   now() - (i::bigint * 63072 / %(n)s) * interval '1000 seconds', now()
            FROM generate_series(1, %(n)s) AS i
            """,
            {"pid": pid, "n": revenue},
        )
        statuses = ["processed"] * 10_000 + ["received"] * 100 + ["processing"] * 50 + ["failed"] * 150
        cursor.execute(
            f"""
            INSERT INTO {ProcessorEvent._meta.db_table}
                (stripe_event_id, type, api_version, livemode, created, created_stamped, payload, raw_body, headers,
                 received_at, status, attempts, last_error, processed_at, claimed_at, project_id, user_id, note,
                 changes)
            SELECT 'evt_dash' || n, 'customer.subscription.updated', '', false, now() - n * interval '1 minute',
                   false, '{{}}'::jsonb, '{{}}', '{{}}'::jsonb, now() - n * interval '1 minute', s.status, 1, '',
                   NULL, now() - n * interval '1 minute', %(pid)s, 'user_' || n, '', '[]'::jsonb
            FROM unnest(%(statuses)s::text[]) WITH ORDINALITY AS s(status, n)
            """,
            {"pid": pid, "statuses": statuses},
        )
    runs = [ReconciliationRun.objects.create(project=project, status="succeeded") for _ in range(2)]
    Discrepancy.objects.bulk_create(
        [
            Discrepancy(
                run=runs[-1],
                project=project,
                kind=f"kind_{n % 4}",
                object_type="subscription",
                stripe_id=f"sub_bench{n}",
                user_id=f"user_{n}",
            )
            for n in range(200)
        ]
    )
    customer = BillingCustomer.objects.create(project=project, user_id="user_bench", stripe_customer_id="cus_dash")
    invoices = Invoice.objects.bulk_create(
        [
            Invoice(
                project=project,
                customer=customer,
                user_id="user_bench",
                currency="usd",
                status="paid" if n % 2 else "open",
                subtotal=3000,
                total=3000,
                created_by="bench",
            )
            for n in range(2000)
        ],
        batch_size=1000,
    )
    from django.utils import timezone

    now = timezone.now()
    sessions = CheckoutSession.objects.bulk_create(
        [
            CheckoutSession(
                project=project,
                customer=customer,
                user_id="user_bench",
                mode="payment",
                invoice=invoice,
                success_url="https://example.invalid/s",
                cancel_url="https://example.invalid/c",
                status="abandoned" if n % 2 else "expired",
                stripe_session_id=f"cs_dash{n}",
                expired_at=now - (n % 300) * dt.timedelta(days=1),
                abandoned_at=now - (n % 300) * dt.timedelta(days=1) if n % 2 else None,
            )
            for n, invoice in enumerate(invoices)
        ],
        batch_size=1000,
    )
    RecoveryAttempt.objects.bulk_create(
        [
            RecoveryAttempt(session=session, number=1, method="stripe_recovery_url", url="https://example.invalid/r")
            for n, session in enumerate(sessions)
            if n % 2 and n % 3 == 0
        ],
        batch_size=1000,
    )
    # The raw INSERT bypassed RevenueEntry.save(), which keeps the daily totals: rebuild them.
    revenue_days_rebuild(project_id=pid)
    with connection.cursor() as cursor:
        for model in (SubscriptionRecord, RevenueEntry, RevenueDay, ProcessorEvent, CheckoutSession):
            # As autovacuum would have by then: statistics, and the visibility map for index-only scans.
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    print(f"loaded {subscriptions} subscriptions and {revenue} revenue rows in {time.perf_counter() - started:.1f} s")


def finance_client() -> Any:
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user, _ = User.objects.get_or_create(username=USERNAME, defaults={"is_staff": True})
    user.user_permissions.add(
        Permission.objects.get(codename="view_revenueentry", content_type__app_label="entitlements")
    )
    client = Client()
    client.force_login(user)
    return client


def timed_renders(client: Any, period: int, rounds: int) -> list[float]:
    from django.urls import reverse

    url = reverse("admin_dashboard")
    figures = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url, {"project": SLUG, "period": str(period)})
        figures.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"the dashboard answered {response.status_code}")
    return figures


def panel_times(period: int) -> dict[str, float]:
    from django.db import transaction
    from django.utils import timezone

    from apps.common.dashboard import selectors
    from apps.projects.models import Project

    scope = selectors.Scope(project=Project.objects.get(slug=SLUG), days=period, now=timezone.now())
    times: dict[str, float] = {}
    with transaction.atomic():  # as the view reads them: one transaction, JIT off
        selectors.planner_for_reports()
        for name in (
            "mrr_by_currency",
            "subscriptions_by_status",
            "subscriptions_per_week",
            "revenue_per_day",
            "webhook_ledger",
            "reconciliation_state",
            "recovery_funnel",
        ):
            started = time.perf_counter()
            getattr(selectors, name)(scope)
            times[name] = round((time.perf_counter() - started) * 1000, 1)
    return times


def main() -> None:
    from bench.common import migrate_if_needed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--revenue", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reload", action="store_true", help="delete the benchmark's rows and load them again")
    parser.add_argument("--keep", action="store_true", help="keep the rows at the end (the default deletes them)")
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit("DATABASE_URL or --database-url: a throwaway PostgreSQL database")
    setup(args.database_url)
    migrate_if_needed()

    from apps.entitlements.models import RevenueEntry, SubscriptionRecord
    from apps.projects.models import Project

    if args.reload:
        cleanup()
    project = Project.objects.filter(slug=SLUG).first()
    if project is None:
        load(args.subscriptions, args.revenue)
        project = Project.objects.get(slug=SLUG)
    print(
        f"rows: {SubscriptionRecord.objects.filter(project=project).count()} subscriptions, "
        f"{RevenueEntry.objects.filter(project=project).count()} revenue entries (project {SLUG})"
    )
    client = finance_client()
    timed_renders(client, 30, 1)  # warm-up: connections, templates, the session; not counted
    try:
        for period in (30, 90, 365):
            figures = timed_renders(client, period, args.rounds)
            print(f"period {period:>3} days: " + ", ".join(f"{ms:.0f} ms" for ms in figures) + " (target < 300 ms)")
            print(f"  per panel (ms): {panel_times(period)}")
    finally:
        if not args.keep:
            cleanup()
    print(
        "command: DATABASE_URL=<throwaway> .venv/bin/python bench/admin_dashboard.py "
        f"--subscriptions {args.subscriptions} --revenue {args.revenue} --rounds {args.rounds}"
        + (" --keep" if args.keep else "")
    )


if __name__ == "__main__":
    main()
