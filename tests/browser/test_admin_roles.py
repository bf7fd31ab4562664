"""Each staff role in a real browser: what it needs works, what its role forbids is refused.

finance: logs in through the login form, sees the dashboard's charts drawn, exports the revenue
ledger as CSV, and cannot replay events. support: finds a customer, grants then revokes a feature
(the public entitlement check follows each within a second), and has no invoice void action. ops:
replays an event from the ledger's admin, and cannot reach discrepancy resolution.

The rows exist before the page opens (the `world` fixture): while the browser is open the test
thread runs Playwright's event loop and Django refuses ORM calls, so the test reads the service the
way a client would, over HTTP from the live server.
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from playwright.sync_api import expect

from apps.common.roles import FINANCE, OPS, SUPPORT, roles_install
from apps.entitlements.models import RevenueEntry
from tests.conftest import make_tenant
from tests.factories import (
    BillingCustomerFactory,
    DiscrepancyFactory,
    InvoiceFactory,
    ProcessorEventFactory,
    ReconciliationRunFactory,
    RevenueEntryFactory,
)

USER = "user_42"
PASSWORD = "role-browser-test"
# The public check must follow an admin grant or revoke this fast (issue 13: "within a second").
CHECK_DEADLINE_SECONDS = 1.0
REVENUE_HEADER = [
    "id",
    "occurred_at",
    "project__slug",
    "user_id",
    "kind",
    "amount",
    "currency",
    "stripe_object_id",
    "stripe_charge_id",
    "stripe_payment_intent_id",
]


@dataclass(frozen=True)
class World:
    project_slug: str
    project_id: int
    api_key: str
    event_pk: int
    event_id: str
    revenue_rows: int


@pytest.fixture
def world(transactional_db: None) -> World:
    """One project with a customer, its event, an invoice, revenue and a discrepancy; one staff user per role."""
    roles_install()
    user_model = get_user_model()
    for role in (FINANCE, SUPPORT, OPS):
        user = user_model.objects.create_user(role, f"{role}@example.invalid", PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
    tenant = make_tenant("alpha")
    project = tenant.project
    project.feature_codes = ["pro"]
    project.save(update_fields=["feature_codes"])
    customer = BillingCustomerFactory.create(project=project, user_id=USER, stripe_customer_id="cus_browser42")
    event = ProcessorEventFactory.create(project=project, user_id=USER, stripe_event_id="evt_browser42")
    InvoiceFactory.create(project=project, customer=customer, user_id=USER)
    DiscrepancyFactory.create(run=ReconciliationRunFactory.create(project=project), user_id=USER)
    RevenueEntryFactory.create(project=project, amount=4900, currency="usd")
    RevenueEntryFactory.create(project=project, amount=2900, currency="eur")
    RevenueEntryFactory.create(project=project, kind=RevenueEntry.Kind.REFUND, amount=900, currency="usd")
    return World(
        project_slug=project.slug,
        project_id=project.pk,
        api_key=tenant.key,
        event_pk=event.pk,
        event_id=event.stripe_event_id,
        revenue_rows=3,
    )


def _login(page: Any, base: str, username: str) -> None:
    """Through Django's admin login form, as a person would (axes and the login log see it)."""
    page.goto(f"{base}{reverse('admin:login')}?{urlencode({'next': reverse('admin:index')})}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username.upper(), ignore_case=True)


def _status(page: Any, url: str) -> int:
    response = page.goto(url)
    assert response is not None
    return int(response.status)


def _customer_page(page: Any, base: str, world: World) -> None:
    """The search form filled in by hand: project and user id."""
    page.goto(f"{base}{reverse('admin:customer_page')}")
    page.select_option("#id_project", world.project_slug)
    page.fill("#id_user_id", USER)
    page.click("#customer-search input[type=submit]")
    expect(page.locator("#customer h2")).to_contain_text(USER)


def _entitled(base: str, world: World, feature: str) -> bool:
    query = urlencode({"project_id": world.project_id, "user_id": USER, "feature_code": feature})
    url = f"{base}/api/v1/entitlements/check?{query}"
    # The live server's http:// URL on loopback, never a file: or custom scheme.
    request = urllib.request.Request(url, headers={"X-API-Key": world.api_key})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return bool(json.loads(response.read())["active"])


def _seconds_until(base: str, world: World, feature: str, *, active: bool) -> float:
    """How long the check took to answer `active`; fails once the deadline has passed."""
    started = time.monotonic()
    while True:
        if _entitled(base, world, feature) is active:
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        assert elapsed < CHECK_DEADLINE_SECONDS, f"the check did not say active={active} within a second"
        time.sleep(0.05)


def test_finance_sees_the_charts_exports_the_revenue_ledger_and_cannot_replay(
    world: World, live_server: Any, offline_page: Any, screenshot: Any
) -> None:
    page, base = offline_page, live_server.url
    _login(page, base, FINANCE)
    screenshot(page, "roles-finance-1-index")

    # The dashboard is the index's first link.
    page.locator("#dashboard-link a").first.click()
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length > 0")
    charts = page.evaluate("Object.keys(Chart.instances).length")
    assert charts >= page.locator("canvas[data-chart]").count() > 0
    box = page.locator("canvas[data-chart]").first.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    screenshot(page, "roles-finance-2-dashboard")

    page.goto(f"{base}{reverse('admin:entitlements_revenueentry_changelist')}")
    with page.expect_download() as download_info:
        page.click("a.export-csv")
    path = download_info.value.path()
    rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert rows[0] == REVENUE_HEADER
    assert len(rows) == 1 + world.revenue_rows
    amount, currency = REVENUE_HEADER.index("amount"), REVENUE_HEADER.index("currency")
    assert {(row[amount], row[currency]) for row in rows[1:]} == {("4900", "usd"), ("2900", "eur"), ("900", "usd")}
    screenshot(page, "roles-finance-3-revenue-ledger")

    # No replay: the ledger's admin is closed to finance, and the customer page offers no replay.
    assert _status(page, f"{base}{reverse('admin:webhooks_processorevent_changelist')}") == 403
    screenshot(page, "roles-finance-4-events-refused")
    _customer_page(page, base, world)
    expect(page.locator("#events")).to_contain_text(world.event_id)
    assert page.locator(".replay-form").count() == 0
    screenshot(page, "roles-finance-5-customer-without-replay")
    assert page.blocked == []


def test_support_grants_and_revokes_from_the_customer_page_and_cannot_void_invoices(
    world: World, live_server: Any, offline_page: Any, screenshot: Any
) -> None:
    page, base = offline_page, live_server.url
    _login(page, base, SUPPORT)
    _customer_page(page, base, world)
    screenshot(page, "roles-support-1-customer")
    assert _entitled(base, world, "pro") is False

    grant_form = page.locator("#grant-form")
    grant_form.locator("[name=feature_code]").fill("pro")
    grant_form.locator("[name=reason]").fill("ticket 42: trial extension")
    grant_form.locator("input[type=submit]").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Granted pro")
    assert _seconds_until(base, world, "pro", active=True) < CHECK_DEADLINE_SECONDS
    expect(page.locator("#entitlements")).to_contain_text("pro")
    screenshot(page, "roles-support-2-granted")

    revoke = page.locator("#grants .revoke-form").first
    revoke.locator("[name=reason]").fill("ticket 42 closed")
    revoke.locator("input[type=submit]").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Revoked grant")
    assert _seconds_until(base, world, "pro", active=False) < CHECK_DEADLINE_SECONDS
    expect(page.locator("#grants")).to_contain_text("ticket 42 closed")
    screenshot(page, "roles-support-3-revoked")

    # Support reads invoices but has no void (nor mark-uncollectible) action.
    assert _status(page, f"{base}{reverse('admin:checkout_invoice_changelist')}") == 200
    page.locator("#result_list").wait_for()
    values = page.locator("select[name=action] option").evaluate_all("options => options.map(o => o.value)")
    assert "void_selected" not in values and "mark_uncollectible_selected" not in values
    screenshot(page, "roles-support-4-invoices-without-void")
    assert page.blocked == []


def test_ops_replays_an_event_and_cannot_resolve_discrepancies(
    world: World, live_server: Any, offline_page: Any, screenshot: Any
) -> None:
    page, base = offline_page, live_server.url
    _login(page, base, OPS)
    page.goto(f"{base}{reverse('admin:webhooks_processorevent_changelist')}")
    page.check(f"input.action-select[value='{world.event_pk}']")
    page.select_option("select[name=action]", "replay_selected")
    page.click("button[name=index]")
    # The reason page first: a replay never runs without one.
    expect(page.locator("body.action-reason")).to_be_visible()
    page.fill("[name=reason]", "ops: re-apply after the fix")
    screenshot(page, "roles-ops-1-replay-reason")
    page.locator("form input[type=submit]").first.click()
    expect(page.locator(".messagelist .success")).to_contain_text("selected 1")
    screenshot(page, "roles-ops-2-replayed")

    page.goto(f"{base}{reverse('admin:webhooks_replayrun_changelist')}")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    screenshot(page, "roles-ops-3-replay-runs")

    # Discrepancies are finance's: the list and its resolve actions are closed to ops.
    assert _status(page, f"{base}{reverse('admin:reconciliation_discrepancy_changelist')}") == 403
    screenshot(page, "roles-ops-4-discrepancies-refused")
    assert page.blocked == []
