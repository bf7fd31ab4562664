"""The finance, support and ops roles: each reaches the admin pages and actions it needs and none other.

Every test logs in a staff user whose only permissions come from its role's group, as installed by
`install_roles` (apps/common/roles.py).
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.test import Client

from apps.checkout.models import Invoice
from apps.common.models import AuditLog
from apps.common.roles import DEMO_ROLE_PASSWORDS, FINANCE, OPS, ROLES, SUPPORT, demo_role_users_create, roles_install
from apps.entitlements.models import Grant
from apps.reconciliation.models import Discrepancy
from tests.admin.role_clients import actions_offered, as_role
from tests.conftest import Tenant
from tests.factories import (
    ApiKeyFactory,
    AuditLogFactory,
    DiscrepancyFactory,
    GrantFactory,
    InvoiceFactory,
    JobPolicyFactory,
    ProcessorEventFactory,
    ReconciliationRunFactory,
)

pytestmark = pytest.mark.django_db

A = "/admin/"

# What each role opens (200) and what it is refused (403), by admin path under /admin/.
PAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    FINANCE: (
        (
            "",
            "checkout/invoice/",
            "checkout/billingcustomer/",
            "checkout/checkoutsession/",
            "entitlements/revenueentry/",
            "entitlements/purchase/",
            "entitlements/subscriptionrecord/",
            "reconciliation/discrepancy/",
            "reconciliation/reconciliationrun/",
            "recovery/recoveryrun/",
            "recovery/recoveryattempt/",
            "common/auditlog/",
        ),
        (
            "webhooks/processorevent/",
            "projects/apikey/",
            "projects/apikey/add/",
            "entitlements/grant/",
            "entitlements/grant/add/",
            "django_celery_beat/periodictask/",
            "common/jobpolicy/",
            "reconciliation/reconciliationrun/start/",
            "auth/user/",
        ),
    ),
    SUPPORT: (
        (
            "",
            "checkout/billingcustomer/",
            "checkout/checkoutsession/",
            "checkout/invoice/",
            "entitlements/grant/",
            "entitlements/grant/add/",
            "entitlements/entitlement/",
            "entitlements/purchase/",
            "entitlements/subscriptionrecord/",
            "webhooks/processorevent/",
            "common/auditlog/",
        ),
        (
            "projects/apikey/",
            "projects/app/",
            "reconciliation/discrepancy/",
            "django_celery_beat/periodictask/",
            "common/jobpolicy/",
            "webhooks/replayrun/",
            "auth/user/",
        ),
    ),
    OPS: (
        (
            "",
            "projects/apikey/",
            "projects/apikey/add/",
            "projects/app/",
            "webhooks/processorevent/",
            "webhooks/replayrun/",
            "reconciliation/reconciliationrun/",
            "reconciliation/reconciliationrun/start/",
            "common/jobpolicy/",
            "common/jobrun/",
            "django_celery_beat/periodictask/",
            "common/auditlog/",
        ),
        (
            "reconciliation/discrepancy/",
            "checkout/invoice/",
            "entitlements/revenueentry/",
            "entitlements/grant/",
            "auth/user/",
        ),
    ),
}


@pytest.fixture(autouse=True)
def _roles(db: None) -> None:
    roles_install()


def _post_action(client: Client, url: str, action: str, pk: int) -> int:
    response = client.post(url, {"action": action, "_selected_action": [pk], "index": 0, "reason": "test"})
    return int(response.status_code)


# --- install_roles --------------------------------------------------------------------------------


def _held(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_install_roles_sets_exactly_the_table_and_a_rerun_changes_nothing() -> None:
    assert {role: _held(role) for role in ROLES} == {role: set(names) for role, names in ROLES.items()}
    assert all(not (c.created or c.added or c.removed) for c in roles_install())
    out = StringIO()
    call_command("install_roles", stdout=out)
    assert out.getvalue().splitlines() == [f"role {role}: unchanged" for role in ROLES]


def test_install_roles_puts_back_what_was_changed_by_hand() -> None:
    group = Group.objects.get(name=SUPPORT)
    group.permissions.add(
        Permission.objects.get(content_type__app_label="checkout", codename="change_invoice")
    )  # would let support void
    group.permissions.remove(Permission.objects.get(content_type__app_label="entitlements", codename="change_grant"))
    out = StringIO()
    call_command("install_roles", stdout=out)
    assert "role support: added entitlements.change_grant; removed checkout.change_invoice" in out.getvalue()
    assert _held(SUPPORT) == set(ROLES[SUPPORT])


# --- pages ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [FINANCE, SUPPORT, OPS])
def test_each_role_opens_its_pages_and_is_refused_the_others(client: Client, role: str) -> None:
    staff = as_role(client, role)
    allowed, refused = PAGES[role]
    assert {path: staff.get(A + path).status_code for path in allowed} == dict.fromkeys(allowed, 200)
    assert {path: staff.get(A + path).status_code for path in refused} == dict.fromkeys(refused, 403)


# --- finance --------------------------------------------------------------------------------------


def test_finance_voids_invoices_and_resolves_discrepancies_but_cannot_replay(client: Client, alice: Tenant) -> None:
    staff = as_role(client, FINANCE)
    assert {"void_selected", "mark_uncollectible_selected"} <= actions_offered(staff, A + "checkout/invoice/")
    assert {"accept_stripe_selected", "keep_local_selected", "ignore_selected"} <= actions_offered(
        staff, A + "reconciliation/discrepancy/"
    )
    invoice = InvoiceFactory.create(customer__project=alice.project)
    _post_action(staff, A + "checkout/invoice/", "void_selected", invoice.pk)
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.VOID

    event = ProcessorEventFactory.create()
    assert _post_action(staff, A + "webhooks/processorevent/", "replay_selected", event.pk) == 403
    assert not AuditLog.objects.filter(action__startswith="webhooks.replay").exists()


# --- support --------------------------------------------------------------------------------------


def test_support_grants_revokes_and_regenerates_but_cannot_void(client: Client, alice: Tenant) -> None:
    staff = as_role(client, SUPPORT)
    assert "revoke" in actions_offered(staff, A + "entitlements/grant/")
    assert "regenerate_selected" in actions_offered(staff, A + "checkout/checkoutsession/")
    invoice_actions = actions_offered(staff, A + "checkout/invoice/")
    assert not invoice_actions & {"void_selected", "mark_uncollectible_selected"}

    invoice = InvoiceFactory.create(customer__project=alice.project)
    _post_action(staff, A + "checkout/invoice/", "void_selected", invoice.pk)
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.DRAFT

    grant = GrantFactory.create(project=alice.project)
    _post_action(staff, A + "entitlements/grant/", "revoke", grant.pk)
    assert Grant.objects.get(pk=grant.pk).revoked_at is not None


def test_support_cannot_see_api_keys_and_no_one_sees_a_key_digest(client: Client, alice: Tenant) -> None:
    key = ApiKeyFactory.create(app=alice.app)
    assert as_role(client, SUPPORT).get(f"{A}projects/apikey/{key.pk}/change/").status_code == 403
    client.logout()
    ops = as_role(client, OPS)
    page = ops.get(f"{A}projects/apikey/{key.pk}/change/")
    assert page.status_code == 200
    assert key.digest not in page.content.decode()
    assert key.digest not in ops.get(f"{A}projects/app/{alice.app.pk}/change/").content.decode()


# --- ops ------------------------------------------------------------------------------------------


def test_ops_replays_runs_jobs_and_reconciliations_but_cannot_resolve(client: Client, alice: Tenant) -> None:
    staff = as_role(client, OPS)
    ProcessorEventFactory.create()
    JobPolicyFactory.create()
    ReconciliationRunFactory.create(project=alice.project)
    assert "replay_selected" in actions_offered(staff, A + "webhooks/processorevent/")
    assert "run_now" in actions_offered(staff, A + "common/jobpolicy/")
    assert "run_again" in actions_offered(staff, A + "reconciliation/reconciliationrun/")
    assert "revoke" in actions_offered(staff, A + "projects/apikey/")
    assert "issue_key" in actions_offered(staff, A + "projects/app/")

    discrepancy = DiscrepancyFactory.create(project=alice.project, run__project=alice.project)
    assert _post_action(staff, A + "reconciliation/discrepancy/", "ignore_selected", discrepancy.pk) == 403
    assert Discrepancy.objects.get(pk=discrepancy.pk).status == discrepancy.status
    assert not AuditLog.objects.filter(action__startswith="reconciliation.discrepancy").exists()


# --- the audit log --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [FINANCE, SUPPORT, OPS, "superuser"])
def test_the_audit_log_is_read_only_for_everyone(client: Client, alice: Tenant, role: str) -> None:
    if role == "superuser":
        client.force_login(get_user_model().objects.create_superuser("root", "root@example.invalid", "pw"))
    else:
        as_role(client, role)
    entry = AuditLogFactory.create(project=alice.project)
    assert client.get(f"{A}common/auditlog/").status_code == 200
    assert client.get(f"{A}common/auditlog/add/").status_code == 403
    assert client.get(f"{A}common/auditlog/{entry.pk}/delete/").status_code == 403
    assert "delete_selected" not in actions_offered(client, f"{A}common/auditlog/")
    page = client.get(f"{A}common/auditlog/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    client.post(f"{A}common/auditlog/{entry.pk}/change/", {"actor": "someone else"})
    assert AuditLog.objects.get(pk=entry.pk).actor == entry.actor


def test_the_audit_log_filters_by_actor_action_and_object(client: Client, alice: Tenant) -> None:
    as_role(client, SUPPORT)
    mine = AuditLogFactory.create(project=alice.project, actor="admin:carol", action="grant.create", target="grant #7")
    other = AuditLogFactory.create(project=alice.project, actor="app:demo", action="grant.revoke", target="grant #8")

    def listed(query: str) -> set[int]:
        response = client.get(f"{A}common/auditlog/?{query}")
        assert response.status_code == 200, query
        return {row.pk for row in response.context["cl"].result_list}

    assert listed("actor=admin%3Acarol") == {mine.pk}
    assert listed("action=grant.revoke") == {other.pk}
    assert listed("q=grant+%238") == {other.pk}
    assert listed(f"project__id__exact={alice.project.pk}") == {mine.pk, other.pk}


# --- seed_demo --------------------------------------------------------------------------------------


def test_seed_demo_creates_one_staff_user_per_role(client: Client) -> None:
    out = StringIO()
    call_command("seed_demo", base_url="http://127.0.0.1:8000", stdout=out)
    call_command("seed_demo", base_url="http://127.0.0.1:8000", stdout=StringIO())  # idempotent
    for role in (FINANCE, SUPPORT, OPS):
        user = get_user_model().objects.get(username=role)
        assert user.is_staff and not user.is_superuser
        assert [g.name for g in user.groups.all()] == [role]
        assert user.check_password(DEMO_ROLE_PASSWORDS[role])
        assert f"user {role} / password {DEMO_ROLE_PASSWORDS[role]}" in out.getvalue()
    assert client.post("/admin/login/", {"username": FINANCE, "password": "finance-demo"}).status_code == 302
    assert client.get(A + "checkout/invoice/").status_code == 200


def test_no_demo_role_users_in_production(settings: Any) -> None:
    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError):
        call_command("seed_demo", stdout=StringIO())
    with pytest.raises(RuntimeError):
        demo_role_users_create()
    assert not get_user_model().objects.filter(username__in=ROLES).exists()
