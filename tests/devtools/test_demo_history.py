"""The demo billing history: every dashboard panel has figures for the demo project, once."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.checkout.models import CheckoutSession, Invoice
from apps.common.dashboard import selectors
from apps.entitlements.models import Entitlement, Grant, Purchase, RevenueEntry, SubscriptionRecord
from apps.projects.demo import demo_seed
from apps.projects.models import Project
from apps.recovery.config import recovery_settings
from apps.recovery.models import RecoveryAttempt
from apps.recovery.selectors import recoverable_sessions
from apps.recovery.sweeps import sweep_hosted_sessions
from apps.webhooks.models import ProcessorEvent
from devtools.demo_history import demo_history_seed
from tests.factories import CatalogProductFactory, PriceFeatureFactory, StripePriceFactory, StripeProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo() -> Project:
    return demo_seed(base_url="http://127.0.0.1:8000").project


def _row_counts() -> dict[str, int]:
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


def test_every_dashboard_panel_has_figures_for_ninety_days(demo: Project) -> None:
    history = demo_history_seed(demo)
    assert history.created
    assert history.counts["subscriptions"] == 40
    scope = selectors.Scope(project=demo, days=90, now=timezone.now())

    mrr = {row["currency"]: row for row in selectors.mrr_by_currency(scope)}
    assert set(mrr) == {"eur", "usd"}
    assert all(row["mrr"] > 0 for row in mrr.values())
    # Monthly, quarterly (month x3) and annual prices are all billed.
    intervals = {
        (item["interval"], item["interval_count"])
        for items in SubscriptionRecord.objects.filter(project=demo).values_list("items", flat=True)
        for item in items
    }
    assert intervals == {("month", 1), ("month", 3), ("year", 1)}

    statuses = {row["status"]: row["count"] for row in selectors.subscriptions_by_status(scope)}
    assert set(statuses) == {"active", "past_due", "trialing"}
    assert all(count > 0 for count in statuses.values())
    assert SubscriptionRecord.objects.filter(project=demo, status="canceled").count() > 0

    weeks = selectors.subscriptions_per_week(scope)
    assert sum(1 for week in weeks if week["new"]) >= 10
    assert sum(1 for week in weeks if week["churned"]) >= 2

    days = selectors.revenue_per_day(scope)
    totals = {row["currency"]: row for row in selectors.revenue_totals(days)}
    assert set(totals) == {"eur", "usd"}
    assert all(row["gross"] > row["net"] > 0 for row in totals.values())  # refunds in both currencies
    assert len({row["day"] for row in days}) >= 60  # most days have revenue

    ledger = selectors.webhook_ledger(scope)
    backlog = {row["status"]: row["count"] for row in ledger["backlog"]}
    assert backlog == {"received": 3, "processing": 0, "failed": 2}
    assert ledger["failed_24h"] == 1
    assert ledger["oldest_age_seconds"] > 24 * 3600

    reconciliation = selectors.reconciliation_state(scope)
    kinds = {row["kind"]: row["count"] for row in reconciliation["open_by_kind"]}
    assert sum(kinds.values()) == 3 and len(kinds) == 2
    assert reconciliation["last_run"]["status"] == "succeeded"

    funnel = {row["stage"]: row["count"] for row in selectors.recovery_funnel(scope)}
    assert funnel["expired"] > funnel["abandoned"] > funnel["recovered"] > funnel["paid"] > 0


def test_a_second_seeding_writes_nothing(demo: Project) -> None:
    assert demo_history_seed(demo).created
    before = _row_counts()
    again = demo_history_seed(demo)
    assert not again.created and again.counts == {}
    assert _row_counts() == before


def test_the_history_is_consistent_and_left_alone_by_the_periodic_jobs(demo: Project) -> None:
    now = timezone.now()
    demo_history_seed(demo, now=now)
    # Every paid subscription period and one-off purchase is in the ledger, each refund refers to one.
    payments = set(
        RevenueEntry.objects.filter(project=demo, kind="payment").values_list("stripe_payment_intent_id", flat=True)
    )
    refunded = set(
        RevenueEntry.objects.filter(project=demo, kind="refund").values_list("stripe_payment_intent_id", flat=True)
    )
    assert refunded and refunded <= payments
    assert set(Purchase.objects.filter(project=demo).values_list("stripe_payment_intent_id", flat=True)) <= payments
    invoice_payments = set(
        Invoice.objects.filter(project=demo, status="paid").values_list("stripe_payment_intent_id", flat=True)
    )
    assert invoice_payments and invoice_payments <= payments
    assert Purchase.objects.filter(project=demo, status="refunded").exists()
    # A past_due subscription became so at its last period's start; canceled ones ended after they began.
    for record in SubscriptionRecord.objects.filter(project=demo):
        assert record.stripe_subscription_id.startswith("sub_demo_")
        assert record.items and record.last_event_id.startswith("evt_demo_")
        if record.status == "past_due":
            assert record.past_due_since is not None and record.current_period_start is not None
            assert record.past_due_since >= record.current_period_start
        if record.status == "canceled":
            assert record.ended_at is not None and record.created_at < record.ended_at <= now
    # The subscription events are in the ledger, processed; recovery attempts were all delivered.
    applied = set(SubscriptionRecord.objects.filter(project=demo).values_list("last_event_id", flat=True))
    processed = set(ProcessorEvent.objects.filter(status="processed").values_list("stripe_event_id", flat=True))
    assert applied <= processed
    assert not RecoveryAttempt.objects.exclude(notification_status="sent").exists()
    # The two grants went through the grant service: audited and projected.
    assert set(Grant.objects.filter(project=demo).values_list("user_id", flat=True)) == {"user_2", "user_9"}
    assert Entitlement.objects.filter(project=demo, source="grant", feature_code="labs").count() == 2

    # The recovery job would take up nothing (it would call Stripe), and its sweep changes nothing.
    max_attempts = recovery_settings().max_attempts
    assert not recoverable_sessions(now=now, max_attempts=max_attempts, retry_after_seconds=0).exists()
    statuses = dict(CheckoutSession.objects.values_list("pk", "status"))
    assert sweep_hosted_sessions(now=now + dt.timedelta(days=1)) == {"expired": 0, "abandoned": 0, "dry_run": False}
    assert dict(CheckoutSession.objects.values_list("pk", "status")) == statuses
    # The failed events used all their attempts: the ledger sweeper does not retry them.
    failed = ProcessorEvent.objects.filter(status="failed")
    assert failed.count() == 2
    assert all(event.attempts >= settings.WEBHOOK_MAX_ATTEMPTS for event in failed)


def test_catalog_prices_are_used_and_their_features_entitle(demo: Project) -> None:
    product = StripeProductFactory.create(id="prod_demo_catalog")
    CatalogProductFactory.create(project=demo, slug="pro", stripe_product_id=product.id)
    monthly = StripePriceFactory.create(id="price_catalog_monthly", product=product, unit_amount=1500)
    PriceFeatureFactory.create(project=demo, stripe_price_id=monthly.id, feature_code="pro")

    demo_history_seed(demo)

    on_catalog = SubscriptionRecord.objects.filter(project=demo, price_ids=[monthly.id])
    assert on_catalog.exists()
    live = on_catalog.filter(status="active").first()
    assert live is not None
    assert Entitlement.objects.filter(project=demo, user_id=live.user_id, feature_code="pro").exists()
    # eur and quarterly prices are not in the catalog: plain demo ids, which entitle to nothing.
    assert SubscriptionRecord.objects.filter(project=demo, price_ids=["price_demo_pro_monthly_eur"]).exists()


def test_the_admin_dashboard_renders_the_demo_figures(demo: Project, client: Client) -> None:
    demo_history_seed(demo)
    client.force_login(User.objects.get(username="admin"))  # seed_demo's superuser
    response = client.get(reverse("admin_dashboard"), {"project": demo.slug, "period": "90"})
    assert response.status_code == 200
    panels = response.context["panels"]
    assert {row["currency"] for row in panels["mrr"]["rows"]} == {"eur", "usd"}
    assert {chart["currency"] for chart in panels["revenue"]} == {"EUR", "USD"}
    html = response.content.decode()
    for chart in ["mrr", "statuses", "weeks", "revenue-usd", "revenue-eur", "webhooks", "discrepancies", "funnel"]:
        assert f'<canvas id="chart-{chart}"' in html
    assert "payment_intent_amount" in html and "subscription_missing_at_stripe" in html


def test_the_command_prints_a_line_per_kind_and_is_idempotent(demo: Project) -> None:
    out = StringIO()
    call_command("seed_demo_history", stdout=out)
    text = out.getvalue()
    for kind in ["subscriptions", "revenue payments", "revenue refunds", "webhook events", "discrepancies", "grants"]:
        assert f"  {kind}" in text
    again = StringIO()
    call_command("seed_demo_history", "--project", demo.slug, stdout=again)
    assert "already there, nothing written" in again.getvalue()


def test_the_command_refuses_an_unknown_project(db: None) -> None:
    with pytest.raises(CommandError, match="seed_demo"):
        call_command("seed_demo_history", "--project", "nope")


def test_make_runs_banner_names_the_dashboard_and_says_the_history_is_illustrative() -> None:
    from devtools.management.commands.devstack import Command

    (line,) = Command()._dashboard_help("http://127.0.0.1:8000")
    assert f"http://127.0.0.1:8000/{settings.ADMIN_URL}dashboard/?project=demo" in line
    assert "illustrative" in line
