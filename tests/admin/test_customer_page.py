"""The customer page: found by user id, email or Stripe customer id within a project; every section
shows this user's rows (and not another project's); grant, revoke and replay go through the services,
are POST-only and need their permissions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.checkout.models import BillingCustomer
from apps.common.customer_page.selectors import stripe_dashboard_url
from apps.common.models import AuditLog
from apps.entitlements.models import Grant
from apps.entitlements.selectors import entitlement_check
from apps.webhooks.models import ProcessorEvent, ReplayRun
from tests.conftest import Tenant, committed
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
    SubscriptionRecordFactory,
)

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:customer_page")
GRANT = reverse("admin:customer_grant")
REVOKE = reverse("admin:customer_revoke")
REPLAY = reverse("admin:customer_replay")
USER = "user_42"


@pytest.fixture
def known(alice: Tenant, bob: Tenant) -> dict[str, Any]:
    """user_42 of alice's project with one row in every section, and a namesake in bob's project."""
    alice.project.feature_codes = ["pro", "labs"]
    alice.project.past_due_grace_days = 3
    alice.project.save()
    project = alice.project
    customer: BillingCustomer = BillingCustomerFactory.create(
        project=project, user_id=USER, stripe_customer_id="cus_known42"
    )
    since = timezone.now() - dt.timedelta(days=1)
    rows: dict[str, Any] = {
        "customer": customer,
        "subscription": SubscriptionRecordFactory.create(
            project=project,
            user_id=USER,
            stripe_subscription_id="sub_known42",
            stripe_customer_id="cus_known42",
            status="past_due",
            past_due_since=since,
            price_ids=["price_monthly42"],
        ),
        "grace_until": since + dt.timedelta(days=3),
        "purchase": PurchaseFactory.create(project=project, user_id=USER, stripe_price_id="price_once42"),
        "grant": GrantFactory.create(project=project, user_id=USER, feature_code="labs", reason="beta tester"),
        "invoice": InvoiceFactory.create(project=project, customer=customer, user_id=USER),
        "session": CheckoutSessionFactory.create(
            project=project, customer=customer, user_id=USER, customer_email="Known42@Example.com"
        ),
        "event": ProcessorEventFactory.create(project=project, user_id=USER, stripe_event_id="evt_known42"),
        "discrepancy": DiscrepancyFactory.create(
            run=ReconciliationRunFactory.create(project=project), stripe_id="sub_drift42", user_id=USER
        ),
    }
    rows["entitlement"] = EntitlementFactory.create(
        project=project, user_id=USER, feature_code="labs", source="grant", source_id=rows["grant"].pk
    )
    rows["audit"] = AuditLogFactory.create(project=project, target=f"grant #{rows['grant'].pk}", reason="beta tester")
    # The same user id in another project, which must not show.
    ProcessorEventFactory.create(project=bob.project, user_id=USER, stripe_event_id="evt_other_project")
    return rows


def _page(client: Client, tenant: Tenant, **key: str) -> Any:
    return client.get(PAGE, {"project": tenant.project.slug, **key})


@pytest.mark.parametrize(
    "key",
    [{"user_id": USER}, {"email": "known42@example.com"}, {"stripe_customer_id": "cus_known42"}],
    ids=["user_id", "email", "stripe_customer_id"],
)
def test_each_key_finds_the_customer(staff: Client, alice: Tenant, known: dict[str, Any], key: dict[str, str]) -> None:
    response = _page(staff, alice, **key)
    assert response.status_code == 200
    overview = response.context["overview"]
    assert overview is not None and overview.user_id == USER and overview.project == alice.project


def test_an_unknown_key_says_no_match_and_two_keys_are_refused(staff: Client, alice: Tenant, known: Any) -> None:
    response = _page(staff, alice, user_id="nobody")
    assert response.context["overview"] is None and response.context["matches"] == []
    assert b"No customer of this project matches" in response.content
    both = _page(staff, alice, user_id=USER, email="known42@example.com")
    assert both.context["overview"] is None and both.context["form"].errors


def test_the_page_shows_every_section_with_the_known_rows(staff: Client, alice: Tenant, known: dict[str, Any]) -> None:
    response = _page(staff, alice, user_id=USER)
    html = response.content.decode()
    for section in (
        "customer",
        "entitlements",
        "subscriptions",
        "purchases",
        "grants",
        "invoices",
        "sessions",
        "events",
        "discrepancies",
        "audit",
    ):
        assert f'id="{section}"' in html, section
    assert "https://dashboard.stripe.com/test/customers/cus_known42" in html
    assert "sub_known42" in html and "price_monthly42" in html and "past_due" in html
    assert response.context["overview"].subscriptions[0].grace_until == known["grace_until"]
    assert "price_once42" in html and "beta tester" in html and "Known42@Example.com" in html
    assert f'href="{reverse("admin:checkout_invoice_change", args=[known["invoice"].pk])}"' in html
    assert "evt_known42" in html and "evt_other_project" not in html
    assert "sub_drift42" in html
    overview = response.context["overview"]
    assert [(e["feature_code"], e["active"], e["source"]) for e in overview.entitlements] == [("labs", True, "grant")]
    assert overview.audit == [known["audit"]]


def test_the_events_are_listed_oldest_first(staff: Client, alice: Tenant, known: dict[str, Any]) -> None:
    later = ProcessorEventFactory.create(
        project=alice.project, user_id=USER, created=known["event"].created + dt.timedelta(minutes=5)
    )
    events = _page(staff, alice, user_id=USER).context["overview"].events
    assert [e.pk for e in events] == [known["event"].pk, later.pk]


def test_a_live_key_links_to_the_live_dashboard(settings: Any, alice: Tenant) -> None:
    settings.STRIPE_SECRET_KEY = "sk_live_example"
    settings.STRIPE_PROJECT_SECRET_KEYS = {}
    url = stripe_dashboard_url(project=alice.project, stripe_customer_id="cus_1")
    assert url == "https://dashboard.stripe.com/customers/cus_1"


def _post(client: Client, url: str, tenant: Tenant, **data: Any) -> Any:
    with committed():
        return client.post(url, {"project": tenant.project.slug, "user_id": USER, **data})


def test_grant_then_revoke_changes_the_entitlement_check(staff: Client, alice: Tenant, known: Any) -> None:
    project_id = alice.project.pk
    assert entitlement_check(project_id=project_id, user_id=USER, feature_code="pro") == (False, None)

    granted = _post(staff, GRANT, alice, feature_code="pro", reason="ticket 9")
    assert granted.status_code == 302 and granted["Location"].startswith(PAGE)
    grant = Grant.objects.get(project=alice.project, user_id=USER, feature_code="pro")
    assert grant.granted_by == "support" and grant.reason == "ticket 9"
    assert entitlement_check(project_id=project_id, user_id=USER, feature_code="pro") == (True, None)

    revoked = _post(staff, REVOKE, alice, grant_id=grant.pk, reason="ticket 9 closed")
    assert revoked.status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoke_reason == "ticket 9 closed"
    assert entitlement_check(project_id=project_id, user_id=USER, feature_code="pro") == (False, None)
    actions = set(AuditLog.objects.filter(target=f"grant #{grant.pk}").values_list("action", "actor"))
    assert actions == {("grant.create", "support"), ("grant.revoke", "support")}


def test_a_grant_with_an_unknown_feature_is_refused_with_a_message(staff: Client, alice: Tenant, known: Any) -> None:
    response = _post(staff, GRANT, alice, feature_code="nope", reason="r")
    assert response.status_code == 302
    assert not Grant.objects.filter(feature_code="nope").exists()
    page = staff.get(response["Location"])
    assert b"Not granted" in page.content


def test_a_revoke_without_a_reason_is_refused(staff: Client, alice: Tenant, known: dict[str, Any]) -> None:
    grant = known["grant"]
    response = _post(staff, REVOKE, alice, grant_id=grant.pk, reason="")
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_at is None
    assert b"Not revoked" in staff.get(response["Location"]).content


def test_a_revoke_of_another_users_grant_is_not_found(staff: Client, alice: Tenant, known: Any) -> None:
    other = GrantFactory.create(project=alice.project, user_id="user_7")
    assert _post(staff, REVOKE, alice, grant_id=other.pk, reason="r").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_replaying_one_of_its_events_creates_a_replay_run(staff: Client, alice: Tenant, known: Any) -> None:
    response = _post(staff, REPLAY, alice, event_id="evt_known42", reason="handler fixed")
    assert response.status_code == 302
    run = ReplayRun.objects.get()
    assert run.params["event_ids"] == ["evt_known42"] and run.project == alice.project
    assert run.requested_by == "admin:support" and run.reason == "handler fixed"
    assert AuditLog.objects.filter(target=f"replay #{run.pk}").exists()


def test_an_event_of_another_project_cannot_be_replayed_from_this_page(
    staff: Client, alice: Tenant, known: Any
) -> None:
    assert _post(staff, REPLAY, alice, event_id="evt_other_project", reason="r").status_code == 404
    assert not ReplayRun.objects.exists()


@pytest.mark.parametrize("url", [GRANT, REVOKE, REPLAY])
def test_the_actions_are_post_only(staff: Client, url: str) -> None:
    assert staff.get(url).status_code == 405


def test_the_actions_need_a_csrf_token(support: User, alice: Tenant, known: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(support)
    data = {"project": alice.project.slug, "user_id": USER, "feature_code": "pro", "reason": "r"}
    assert client.post(GRANT, data).status_code == 403
    assert not Grant.objects.filter(feature_code="pro").exists()


def _staff_with(*names: str) -> Client:
    username = f"agent{get_user_model().objects.count()}"
    user = get_user_model().objects.create_user(username, f"{username}@example.invalid", "pw", is_staff=True)
    for name in names:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_the_page_needs_the_customer_view_permission(alice: Tenant, known: Any) -> None:
    assert _page(_staff_with("entitlements.view_grant"), alice, user_id=USER).status_code == 403
    assert _page(_staff_with("checkout.view_billingcustomer"), alice, user_id=USER).status_code == 200


def test_each_action_needs_its_permission(alice: Tenant, known: dict[str, Any]) -> None:
    viewer = _staff_with("checkout.view_billingcustomer")
    page = _page(viewer, alice, user_id=USER)
    assert page.context["can_grant"] is False and b'id="grant-form"' not in page.content
    assert _post(viewer, GRANT, alice, feature_code="pro", reason="r").status_code == 403
    assert _post(viewer, REVOKE, alice, grant_id=known["grant"].pk, reason="r").status_code == 403
    assert _post(viewer, REPLAY, alice, event_id="evt_known42", reason="r").status_code == 403
    assert not Grant.objects.filter(feature_code="pro").exists() and not ReplayRun.objects.exists()

    support = _staff_with("checkout.view_billingcustomer", "entitlements.add_grant", "entitlements.change_grant")
    assert _post(support, GRANT, alice, feature_code="pro", reason="r").status_code == 302
    assert _post(support, REPLAY, alice, event_id="evt_known42", reason="r").status_code == 403
    ops = _staff_with("checkout.view_billingcustomer", "webhooks.change_processorevent")
    assert _post(ops, REPLAY, alice, event_id="evt_known42", reason="r").status_code == 302
    assert ProcessorEvent.objects.filter(stripe_event_id="evt_known42").exists()
