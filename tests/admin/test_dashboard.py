"""The admin dashboard: every figure against a hand computation, the page, its queries, who may see it.

The clock is frozen at Wednesday 2026-06-17 12:00 UTC (the ISO week of Monday 2026-06-15); the
default period is the 30 days before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.checkout.models import CheckoutSession, Invoice
from apps.common.dashboard import selectors
from apps.common.dashboard.money import money
from apps.entitlements.models import RevenueEntry, SubscriptionRecord
from apps.projects.models import Project
from apps.reconciliation.models import Discrepancy, ReconciliationRun
from apps.webhooks.models import ProcessorEvent
from tests.factories import (
    BillingCustomerFactory,
    CheckoutSessionFactory,
    DiscrepancyFactory,
    InvoiceFactory,
    ProcessorEventFactory,
    ProjectFactory,
    ReconciliationRunFactory,
    RecoveryAttemptFactory,
    RevenueEntryFactory,
    SubscriptionRecordFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 17, 12, 0, tzinfo=dt.UTC)
LONG_AGO = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _item(amount: int, currency: str, interval: str, count: int = 1, quantity: int = 1) -> dict[str, Any]:
    """A subscription item as Stripe's snapshot carries it: the price inline, with its quantity."""
    return {
        "quantity": quantity,
        "price": {
            "object": "price",
            "unit_amount": amount,
            "currency": currency,
            "recurring": {"interval": interval, "interval_count": count},
        },
    }


def _subscription(
    project: Project, items: list[dict[str, Any]], *, status: str = "active", created: dt.datetime = LONG_AGO, **kw: Any
) -> SubscriptionRecord:
    record = SubscriptionRecordFactory.create(
        project=project, status=status, stripe_data={"items": {"data": items}}, **kw
    )
    SubscriptionRecord.objects.filter(pk=record.pk).update(created_at=created)  # auto_now_add: set afterwards
    return record


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def project(frozen: None) -> Project:
    """Known subscriptions, payments, refunds, events, discrepancies and sessions (see each section)."""
    project: Project = ProjectFactory.create(slug="acme", name="Acme")
    other: Project = ProjectFactory.create(slug="zeta", name="Zeta")

    # Subscriptions. usd: 1000 x2 monthly, 2500 quarterly, 12000 annual, 1000 quarterly, and one
    # subscription with two items (300 monthly + 100 weekly). eur: 990 x3 monthly, 9900 annual, 500
    # monthly past_due. Not counted in MRR: a trialing and a canceled one, and the other project's.
    _subscription(project, [_item(1000, "usd", "month", quantity=2)])
    _subscription(project, [_item(2500, "usd", "month", count=3)])
    _subscription(project, [_item(12000, "usd", "year")])
    _subscription(project, [_item(1000, "usd", "month", count=3)])
    _subscription(
        project,
        [_item(300, "usd", "month"), _item(100, "usd", "week")],
        created=dt.datetime(2026, 6, 16, 9, 0, tzinfo=dt.UTC),
    )
    _subscription(project, [_item(990, "eur", "month", quantity=3)])
    _subscription(project, [_item(9900, "eur", "year")])
    _subscription(
        project, [_item(500, "eur", "month")], status="past_due", created=dt.datetime(2026, 6, 15, 0, 0, tzinfo=dt.UTC)
    )
    _subscription(
        project, [_item(5000, "usd", "month")], status="trialing", created=dt.datetime(2026, 6, 9, tzinfo=dt.UTC)
    )
    _subscription(
        project, [_item(7000, "usd", "month")], status="canceled", ended_at=dt.datetime(2026, 6, 10, tzinfo=dt.UTC)
    )
    _subscription(other, [_item(100000, "usd", "month")])

    # The revenue ledger: payments and refunds in two currencies, one usd payment 77 days ago (outside
    # 30 days, inside 90) and one of the other project.
    def revenue(kind: str, amount: int, currency: str, at: dt.datetime, of: Project = project) -> None:
        RevenueEntryFactory.create(project=of, kind=kind, amount=amount, currency=currency, occurred_at=at)

    pay, refund = RevenueEntry.Kind.PAYMENT, RevenueEntry.Kind.REFUND
    revenue(pay, 5000, "usd", dt.datetime(2026, 6, 16, 10, 0, tzinfo=dt.UTC))
    revenue(pay, 2000, "usd", dt.datetime(2026, 6, 16, 15, 0, tzinfo=dt.UTC))
    revenue(pay, 999, "usd", dt.datetime(2026, 6, 17, 8, 0, tzinfo=dt.UTC))
    revenue(refund, 1500, "usd", dt.datetime(2026, 6, 17, 9, 0, tzinfo=dt.UTC))
    revenue(pay, 3000, "eur", dt.datetime(2026, 6, 10, 12, 0, tzinfo=dt.UTC))
    revenue(refund, 3000, "eur", dt.datetime(2026, 6, 11, 8, 0, tzinfo=dt.UTC))
    revenue(pay, 1200, "eur", dt.datetime(2026, 6, 11, 23, 59, tzinfo=dt.UTC))
    revenue(pay, 10000, "usd", dt.datetime(2026, 4, 1, 12, 0, tzinfo=dt.UTC))
    revenue(pay, 777, "usd", dt.datetime(2026, 6, 16, 12, 0, tzinfo=dt.UTC), of=other)

    # The webhook ledger: (status, hours since received, hours since claimed).
    status = ProcessorEvent.Status
    for state, received_h, claimed_h in [
        (status.RECEIVED, 5, None),
        (status.RECEIVED, 2, None),
        (status.PROCESSING, 1, 1),
        (status.FAILED, 3, 1),
        (status.FAILED, 31, 30),
        (status.PROCESSED, 100, 100),
        (status.IGNORED, 200, 200),
    ]:
        event = ProcessorEventFactory.create(project=project, status=state)
        ProcessorEvent.objects.filter(pk=event.pk).update(
            received_at=NOW - dt.timedelta(hours=received_h),
            claimed_at=NOW - dt.timedelta(hours=claimed_h) if claimed_h is not None else None,
        )
    ProcessorEventFactory.create(project=other, status=status.FAILED, claimed_at=NOW)

    # Reconciliation: two runs (the later one is the last), open discrepancies of two kinds.
    older = ReconciliationRunFactory.create(project=project)
    last = ReconciliationRunFactory.create(project=project, status=ReconciliationRun.Status.FAILED)
    ReconciliationRun.objects.filter(pk=older.pk).update(started_at=NOW - dt.timedelta(days=2))
    ReconciliationRun.objects.filter(pk=last.pk).update(started_at=NOW - dt.timedelta(hours=6))
    DiscrepancyFactory.create_batch(2, run=last, kind="subscription_status")
    DiscrepancyFactory.create(run=last, kind="missing_charge")
    DiscrepancyFactory.create(run=older, kind="missing_charge", status=Discrepancy.Status.RESOLVED)

    # Recovery funnel: invoice sessions (expired, abandoned, with an attempt, invoice paid).
    customer = BillingCustomerFactory.create(project=project)

    def session(*, days_ago: int, abandoned: bool, attempt: bool, paid: bool) -> None:
        invoice = InvoiceFactory.create(customer=customer, status=Invoice.Status.PAID if paid else Invoice.Status.OPEN)
        expired_at = NOW - dt.timedelta(days=days_ago)
        row = CheckoutSessionFactory.create(
            customer=customer,
            mode=CheckoutSession.Mode.PAYMENT,
            stripe_price_id="",
            invoice=invoice,
            status=CheckoutSession.Status.ABANDONED if abandoned else CheckoutSession.Status.EXPIRED,
            expired_at=expired_at,
            abandoned_at=expired_at + dt.timedelta(hours=1) if abandoned else None,
        )
        if attempt:
            RecoveryAttemptFactory.create(session=row)

    session(days_ago=3, abandoned=False, attempt=False, paid=False)
    session(days_ago=4, abandoned=True, attempt=False, paid=False)
    session(days_ago=5, abandoned=True, attempt=True, paid=False)
    session(days_ago=6, abandoned=True, attempt=True, paid=True)
    session(days_ago=60, abandoned=True, attempt=True, paid=True)  # outside 30 days
    CheckoutSessionFactory.create(
        customer=customer, status=CheckoutSession.Status.EXPIRED, expired_at=NOW
    )  # no invoice
    return project


def _scope(project: Project, days: int = 30) -> selectors.Scope:
    return selectors.Scope(project=project, days=days, now=NOW)


def test_mrr_equals_the_hand_computation(project: Project) -> None:
    # usd: 1000*2 + 2500/3 + 12000/12 + 1000/3 + 300 + 100*52/12
    #    = 2000 + 833.33.. + 1000 + 333.33.. + 300 + 433.33.. = 4900 exactly (rounding each item first
    #      would give 2000 + 833 + 1000 + 333 + 300 + 433 = 4899).
    # eur: 990*3 + 9900/12 + 500 (past_due counts) = 2970 + 825 + 500 = 4295.
    assert selectors.mrr_by_currency(_scope(project)) == [
        {"currency": "eur", "mrr": 4295, "items": 3},
        {"currency": "usd", "mrr": 4900, "items": 6},
    ]


def test_mrr_rounds_once_per_currency_half_to_even() -> None:
    assert selectors.mrr_normalise([(12, 24)]) == 0  # 0.5 -> 0
    assert selectors.mrr_normalise([(36, 24)]) == 2  # 1.5 -> 2
    assert selectors.mrr_normalise([(12000, 36)]) == 333  # 333.33..
    assert selectors.mrr_normalise([(24000, 36)]) == 667  # two quarterly 1000s: 666.66..
    assert selectors.mrr_normalise([(1000, 12), (12, 12)]) == 84  # 83.33.. + 1


def test_a_subscriptions_monthly_amount_is_one_exact_fraction() -> None:
    from apps.entitlements.models import subscription_mrr

    def item(amount: int, interval: str, count: int = 1, quantity: int = 1, currency: str = "usd") -> dict[str, Any]:
        return {
            "unit_amount": amount,
            "currency": currency,
            "interval": interval,
            "interval_count": count,
            "quantity": quantity,
        }

    # 300 monthly + 100 weekly: (300*12 + 100*52) / 12.
    assert subscription_mrr([item(300, "month"), item(100, "week")]) == ("usd", 8800, 12, 2)
    # quarterly and semi-annual: denominator 12 * lcm(3, 6) = 72; 1000/3 + 600/6 = 433.33..
    assert subscription_mrr([item(1000, "month", 3), item(600, "month", 6)]) == ("usd", 1000 * 12 * 2 + 600 * 12, 72, 2)
    # tiered (no unit_amount), another currency than the first item's, and no interval: not counted.
    assert subscription_mrr(
        [
            item(500, "year", currency="EUR"),
            item(99, "month", currency="usd"),
            {"unit_amount": None, "interval": "month"},
            {"unit_amount": 5, "interval": None},
        ]
    ) == ("eur", 500, 12, 1)
    assert subscription_mrr([]) == ("", 0, 12, 0)


def test_subscriptions_by_status_leave_out_ended_ones(project: Project) -> None:
    assert selectors.subscriptions_by_status(_scope(project)) == [
        {"status": "active", "count": 7},
        {"status": "past_due", "count": 1},
        {"status": "trialing", "count": 1},
    ]


def test_new_and_churned_per_week(project: Project) -> None:
    # New: trialing on 06-09 (week of 06-08); past_due on 06-15 and the two-item one on 06-16 (week of
    # 06-15). Churned: the canceled one ended 06-10 (week of 06-08). Everything else was created in January.
    assert selectors.subscriptions_per_week(_scope(project)) == [
        {"week": dt.date(2026, 6, 8), "new": 1, "churned": 1},
        {"week": dt.date(2026, 6, 15), "new": 2, "churned": 0},
    ]


def test_revenue_per_day_subtracts_refunds(project: Project) -> None:
    days = selectors.revenue_per_day(_scope(project))
    assert days == [
        {"day": dt.date(2026, 6, 10), "currency": "eur", "gross": 3000, "refunded": 0, "net": 3000},
        {"day": dt.date(2026, 6, 11), "currency": "eur", "gross": 1200, "refunded": 3000, "net": -1800},
        {"day": dt.date(2026, 6, 16), "currency": "usd", "gross": 7000, "refunded": 0, "net": 7000},
        {"day": dt.date(2026, 6, 17), "currency": "usd", "gross": 999, "refunded": 1500, "net": -501},
    ]
    assert selectors.revenue_totals(days) == [
        {"currency": "eur", "gross": 4200, "refunded": 3000, "net": 1200},
        {"currency": "usd", "gross": 7999, "refunded": 1500, "net": 6499},
    ]
    # 90 days take in the usd payment of April 1st.
    totals_90 = selectors.revenue_totals(selectors.revenue_per_day(_scope(project, 90)))
    assert totals_90[1] == {"currency": "usd", "gross": 17999, "refunded": 1500, "net": 16499}


def test_webhook_ledger(project: Project) -> None:
    assert selectors.webhook_ledger(_scope(project)) == {
        "backlog": [
            {"status": "received", "count": 2},
            {"status": "processing", "count": 1},
            {"status": "failed", "count": 2},
        ],
        "failed_24h": 1,  # the other failed one was last claimed 30 h ago
        "oldest_received_at": NOW - dt.timedelta(hours=31),
        "oldest_age_seconds": 31 * 3600,
    }


def test_reconciliation_state(project: Project) -> None:
    state = selectors.reconciliation_state(_scope(project))
    assert state["open_by_kind"] == [
        {"kind": "missing_charge", "count": 1},
        {"kind": "subscription_status", "count": 2},
    ]
    assert state["last_run"] is not None
    assert (state["last_run"]["status"], state["last_run"]["started_at"]) == ("failed", NOW - dt.timedelta(hours=6))


def test_recovery_funnel(project: Project) -> None:
    assert selectors.recovery_funnel(_scope(project)) == [
        {"stage": "expired", "count": 4},
        {"stage": "abandoned", "count": 3},
        {"stage": "recovered", "count": 2},
        {"stage": "paid", "count": 1},
    ]
    assert selectors.recovery_funnel(_scope(project, 90))[3] == {"stage": "paid", "count": 2}


def test_money_shows_minor_units_as_amounts() -> None:
    assert money(4900, "usd") == "49.00 USD"
    assert money(-501, "usd") == "-5.01 USD"
    assert money(500, "jpy") == "500 JPY"
    assert money(1234, "kwd") == "1.234 KWD"


def _view_revenue() -> Permission:
    return Permission.objects.get(codename="view_revenueentry", content_type__app_label="entitlements")


def _finance(client: Client) -> User:
    user: User = UserFactory.create(is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_revenueentry", content_type__app_label="entitlements")
    )
    client.force_login(user)
    return user


def test_the_page_shows_charts_and_tables_to_finance(client: Client, project: Project) -> None:
    _finance(client)
    response = client.get(reverse("admin_dashboard"), {"project": "acme", "period": "30"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "vendor/chartjs/chart.umd.min.js" in html
    for chart in ["mrr", "statuses", "weeks", "revenue-usd", "revenue-eur", "webhooks", "discrepancies", "funnel"]:
        assert f'<canvas id="chart-{chart}"' in html
        assert f'id="chart-{chart}-spec"' in html  # its data, for Chart.js
    # The tables: amounts with their currency, counts.
    for figure in ["49.00 USD", "42.95 EUR", "79.99 USD", "-5.01 USD", "12.00 EUR", "64.99 USD", "-18.00 EUR"]:
        assert figure in html
    assert '<td>subscription_status</td><td class="num">2</td>' in html
    assert "111600 s" in html  # the oldest unprocessed event: 31 h
    # The index links it first, above the app list.
    index = client.get(reverse("admin:index")).content.decode()
    assert 'id="dashboard-link"' in index
    assert index.index(reverse("admin_dashboard")) < index.index('class="app-')


def test_the_pickers_choose_project_and_period(client: Client, project: Project) -> None:
    _finance(client)
    zeta = client.get(reverse("admin_dashboard"), {"project": "zeta", "period": "365"})
    assert zeta.status_code == 200
    assert zeta.context["period"] == 365
    assert zeta.context["panels"]["mrr"]["rows"][0]["amount"] == "1000.00 USD"
    # An unknown period falls back to 30 days; no project chosen shows the first by slug.
    default = client.get(reverse("admin_dashboard"), {"period": "7"})
    assert (default.context["period"], default.context["project"].slug) == (30, "acme")


def test_the_query_count_is_bounded_and_does_not_grow_with_rows(client: Client, project: Project) -> None:
    _finance(client)
    url = reverse("admin_dashboard")
    with CaptureQueriesContext(connection) as before:
        assert client.get(url).status_code == 200
    for day in range(20):
        _subscription(project, [_item(1000, "usd", "month"), _item(100, "eur", "year")])
        RevenueEntryFactory.create(project=project, occurred_at=NOW - dt.timedelta(days=day))
        ProcessorEventFactory.create(project=project, status=ProcessorEvent.Status.FAILED)
        DiscrepancyFactory.create(run=ReconciliationRun.objects.filter(project=project).first(), kind=f"kind_{day}")
    with CaptureQueriesContext(connection) as after:
        assert client.get(url).status_code == 200
    assert len(after.captured_queries) == len(before.captured_queries)
    assert len(after.captured_queries) <= 21  # session, user, permissions, projects, then the panels


def test_staff_without_the_permission_is_refused(client: Client, project: Project) -> None:
    client.force_login(UserFactory.create(is_staff=True))
    assert client.get(reverse("admin_dashboard")).status_code == 403
    assert 'id="dashboard-link"' not in client.get(reverse("admin:index")).content.decode()


def test_a_non_staff_user_is_sent_to_the_login(client: Client, project: Project) -> None:
    user: User = UserFactory.create(is_staff=False)
    user.user_permissions.add(
        Permission.objects.get(codename="view_revenueentry", content_type__app_label="entitlements")
    )
    client.force_login(user)
    response = client.get(reverse("admin_dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_anonymous_is_sent_to_the_login(client: Client) -> None:
    response = client.get(reverse("admin_dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
