"""The lists finance and support scan fit a 1400 px wide window (issue 13): nothing scrolls sideways,
no cell is cut with an ellipsis, and the columns people look for (user, amount with currency) are
whole.

A superuser logs in through the form and opens each changelist holding a few rows with realistic
values: Stripe ids at their real lengths, long user ids, reasons and errors of a sentence or more.
Each page is measured in Chromium and saved as a full-page screenshot, var/screenshots/list-<name>.png.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from apps.checkout.models import CheckoutSession, Invoice
from apps.common.models import AuditLog
from apps.entitlements.models import Entitlement, RevenueEntry
from apps.reconciliation.models import Discrepancy, ReconciliationRun
from apps.recovery.models import RecoveryAttempt
from apps.webhooks.models import ProcessorEvent
from tests.browser.conftest import offline_browser_page
from tests.conftest import make_tenant
from tests.factories import (
    AuditLogFactory,
    BillingCustomerFactory,
    CheckoutSessionFactory,
    DiscrepancyFactory,
    EntitlementFactory,
    GrantFactory,
    InvoiceFactory,
    ProcessorEventFactory,
    PurchaseFactory,
    ReconciliationRunFactory,
    RecoveryAttemptFactory,
    RevenueEntryFactory,
    SubscriptionRecordFactory,
)

VIEWPORT = {"width": 1400, "height": 900}
PASSWORD = "lists-width-test"
# Realistic widths: Stripe's ids are 27-30 characters (a Checkout session's 66), and user ids are
# whatever the client app uses (a ULID, an email).
USERS = ("usr_01HZX3K9Q7M2T8V4B6N1C5D0EF", "customer-4711@acme-cloud.example")
SESSION_ID = "cs_live_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ0123456789abcdefGHIJKL"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)

LISTS = {
    "revenue-entries": "admin:entitlements_revenueentry_changelist",
    "entitlements": "admin:entitlements_entitlement_changelist",
    "grants": "admin:entitlements_grant_changelist",
    "subscription-records": "admin:entitlements_subscriptionrecord_changelist",
    "purchases": "admin:entitlements_purchase_changelist",
    "webhook-events": "admin:webhooks_processorevent_changelist",
    "audit-log": "admin:common_auditlog_changelist",
    "discrepancies": "admin:reconciliation_discrepancy_changelist",
    "reconciliation-runs": "admin:reconciliation_reconciliationrun_changelist",
    "checkout-sessions": "admin:checkout_checkoutsession_changelist",
    "invoices": "admin:checkout_invoice_changelist",
    "recovery-attempts": "admin:recovery_recoveryattempt_changelist",
}

# Everything the page would need to scroll or cut: the document, the results box (Django's admin
# gives it overflow-x: auto, so a wide table scrolls inside it without widening the document) and
# every cell whose text is cut by text-overflow or hidden by overflow.
MEASURE = """() => {
    const results = document.querySelector('#changelist .results');
    const table = document.querySelector('#result_list');
    const cut = [];
    for (const cell of document.querySelectorAll('#result_list th, #result_list td')) {
        const style = getComputedStyle(cell);
        const clips = style.textOverflow === 'ellipsis' || style.overflowX === 'hidden';
        if (clips && cell.scrollWidth > cell.clientWidth + 1) cut.push(cell.innerText.trim().slice(0, 80));
    }
    return {
        documentWidth: document.documentElement.scrollWidth,
        resultsOverflow: results && table ? table.scrollWidth - results.clientWidth : 0,
        rows: document.querySelectorAll('#result_list tbody tr').length,
        cut: cut,
    };
}"""


def _rows() -> None:
    """Two or three rows per list, with the longest values such a row really holds."""
    project = make_tenant("acme-cloud").project
    customers = [
        BillingCustomerFactory.create(project=project, user_id=user, stripe_customer_id=f"cus_Q{i}AbCdEfGhIjKlMn")
        for i, user in enumerate(USERS)
    ]
    for i, user in enumerate(USERS):
        RevenueEntryFactory.create(
            project=project,
            user_id=user,
            stripe_object_id=f"pi_3QAbCdEfGhIjKlMn{i}aBcDeFg",
            stripe_payment_intent_id=f"pi_3QAbCdEfGhIjKlMn{i}aBcDeFg",
            amount=1_249_900,
            currency="eur",
            occurred_at=NOW,
        )
        RevenueEntryFactory.create(
            project=project,
            user_id=user,
            kind=RevenueEntry.Kind.REFUND,
            stripe_object_id=f"ch_3QAbCdEfGhIjKlMn{i}aBcDeFg@1249900",
            stripe_charge_id=f"ch_3QAbCdEfGhIjKlMn{i}aBcDeFg",
            amount=1_249_900,
            currency="eur",
            occurred_at=NOW,
        )
        EntitlementFactory.create(
            project=project,
            user_id=user,
            feature_code="priority-support-plus",
            source=Entitlement.Source.SUBSCRIPTION,
            source_id=10_000_000 + i,
            valid_from=NOW - dt.timedelta(days=3),
            valid_to=NOW + dt.timedelta(days=27),
            computed_at=NOW,
        )
        GrantFactory.create(
            project=project,
            user_id=user,
            feature_code="priority-support-plus",
            granted_by="support.agent.with.a.long.name@acme-cloud.example",
            reason="Goodwill after the outage of 14 March: the customer lost two days of exports and asked twice.",
            valid_from=NOW,
            valid_to=NOW + dt.timedelta(days=30),
        )
        SubscriptionRecordFactory.create(
            project=project,
            user_id=user,
            stripe_subscription_id=f"sub_1QAbCdEfGhIjKlMnOpQrSt{i}v",
            stripe_customer_id=customers[i].stripe_customer_id,
            status="past_due",
            current_period_end=NOW + dt.timedelta(days=12),
        )
        PurchaseFactory.create(
            project=project,
            user_id=user,
            feature_code="lifetime-archive-access",
            stripe_price_id=f"price_1QAbCdEfGhIjKlMnOpQr{i}",
            stripe_checkout_session_id=f"{SESSION_ID}{i}",
            stripe_payment_intent_id=f"pi_3QAbCdEfGhIjKlMn{i}aBcDeFg",
            amount=1_249_900,
            currency="eur",
            amount_refunded=250_000,
            valid_to=NOW + dt.timedelta(days=365),
        )
        ProcessorEventFactory.create(
            project=project,
            user_id=user,
            stripe_event_id=f"evt_1QAbCdEfGhIjKlMnOpQrSt{i}v",
            type="customer.subscription.pending_update_expired",
            status=ProcessorEvent.Status.FAILED,
            attempts=12,
        )
        AuditLogFactory.create(
            project=project,
            actor="support.agent.with.a.long.name@acme-cloud.example",
            action="discrepancy.resolve",
            target=f"discrepancy #{1_000_000 + i} (sub_1QAbCdEfGhIjKlMnOpQrSt{i}v)",
            reason="Stripe's status is right: the customer cancelled by phone and the webhook was lost in the outage.",
        )
        invoice = InvoiceFactory.create(
            project=project,
            customer=customers[i],
            user_id=user,
            status=Invoice.Status.OPEN,
            currency="eur",
            subtotal=1_249_900,
            total=1_249_900,
            due_at=NOW + dt.timedelta(days=14),
        )
        CheckoutSessionFactory.create(
            project=project,
            customer=customers[i],
            user_id=user,
            invoice=invoice,
            mode=CheckoutSession.Mode.PAYMENT,
            status=CheckoutSession.Status.OPEN,
            stripe_session_id=f"{SESSION_ID[:-1]}{i}",
            expires_at=NOW + dt.timedelta(hours=23),
            payment_failed_at=NOW,
        )
    run = ReconciliationRunFactory.create(
        project=project, requested_by="finance.lead.with.a.long.name@acme-cloud.example", duration_ms=1_234_567
    )
    ReconciliationRunFactory.create(project=project, mode=ReconciliationRun.Mode.INCREMENTAL, dry_run=True)
    for i, user in enumerate(USERS):
        DiscrepancyFactory.create(
            run=run,
            kind="charge_amount_refunded",
            object_type="charge",
            stripe_id=f"ch_3QAbCdEfGhIjKlMn{i}aBcDeFg",
            user_id=user,
            local_value={"amount_refunded": 250_000, "purchase_amount_refunded": 250_000},
            stripe_value={"amount_refunded": 1_249_900},
            status=Discrepancy.Status.OPEN,
        )
        RecoveryAttemptFactory.create(
            session__customer=customers[i],
            session__stripe_session_id=f"{SESSION_ID[:-2]}r{i}",
            notification_status=RecoveryAttempt.NotificationStatus.FAILED,
            notification_error="SMTPRecipientsRefused: {'customer-4711@acme-cloud.example': (550, b'5.1.1 "
            "The email account that you tried to reach does not exist.')}",
        )
    get_user_model().objects.create_superuser("finance-lead", "lead@example.invalid", PASSWORD)
    assert AuditLog.objects.count() == len(USERS)


@pytest.fixture
def lists_world(transactional_db: None) -> None:
    _rows()


def test_every_finance_and_support_list_fits_1400_px(
    lists_world: None, live_server: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    base = live_server.url
    too_wide: dict[str, Any] = {}
    with offline_browser_page() as page:
        page.set_viewport_size(VIEWPORT)
        page.goto(f"{base}{reverse('admin:login')}?{urlencode({'next': reverse('admin:index')})}")
        page.fill("#id_username", "finance-lead")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#user-tools")).to_be_visible()
        for name, url_name in LISTS.items():
            response = page.goto(f"{base}{reverse(url_name)}")
            assert response is not None and response.status == 200, name
            measured = page.evaluate(MEASURE)
            screenshot(page, f"list-{name}")
            assert measured["rows"] >= 2, (name, measured)
            if measured["documentWidth"] > VIEWPORT["width"] or measured["resultsOverflow"] > 0 or measured["cut"]:
                too_wide[name] = measured
        # The columns people scan for are whole on the revenue list: the user and the amount.
        page.goto(f"{base}{reverse(LISTS['revenue-entries'])}")
        cells = page.locator("#result_list tbody").inner_text().replace("\u00a0", " ")
        assert all(user in cells for user in USERS)
        assert "1249900 EUR" in cells
        assert page.blocked == []
    assert too_wide == {}, too_wide
