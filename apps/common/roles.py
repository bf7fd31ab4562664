"""The admin's staff roles: one group per role, holding exactly the permissions of ROLES.

`manage.py install_roles` (run by `make run` and the container's web role) makes each group's
permissions equal the table: a permission added by hand in the admin is removed by the next install,
so that what a role may do is what this file says (docs/admin.md has the same table in words).

Each admin action checks a permission (its `permissions=[...]`, see the apps' admin.py):
  void / mark uncollectible an invoice   checkout.change_invoice
  regenerate a hosted session            checkout.change_checkoutsession
  grant / revoke a grant                 entitlements.add_grant / entitlements.change_grant
  replay events (dry runs need view)     webhooks.change_processorevent
  resolve discrepancies                  reconciliation.resolve_discrepancy
  start a reconciliation run             reconciliation.run_reconciliation
  run a periodic job or recovery now     common.run_job
  issue / revoke an API key              projects.add_apikey / projects.change_apikey
  export CSV                             common.export_data
  rotate / enable / disable an endpoint  entitlements.change_notificationendpoint
  replay notifications / deliveries      entitlements.change_notification / entitlements.change_delivery
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

FINANCE = "finance"
SUPPORT = "support"
OPS = "ops"

ROLES: dict[str, tuple[str, ...]] = {
    # Reads everything money-related; voids invoices, resolves discrepancies, exports. No replays, no keys.
    FINANCE: (
        "projects.view_project",
        "checkout.view_billingcustomer",
        "checkout.view_invoice",
        "checkout.change_invoice",  # void and mark uncollectible (the rows stay read-only)
        "checkout.view_invoiceline",
        "checkout.view_checkoutsession",
        "checkout.view_portalsession",
        "entitlements.view_purchase",
        "entitlements.view_revenueentry",
        "entitlements.view_subscriptionrecord",
        "reconciliation.view_reconciliationrun",
        "reconciliation.view_discrepancy",
        "reconciliation.resolve_discrepancy",
        "recovery.view_recoveryrun",
        "recovery.view_recoveryattempt",
        "common.view_auditlog",
        "common.export_data",
    ),
    # The customer's side: reads the customer, its money rows and the ledger; grants, revokes and
    # regenerates sessions. Sees invoices but cannot void them; no API keys.
    SUPPORT: (
        "projects.view_project",
        "checkout.view_billingcustomer",
        "checkout.view_checkoutsession",
        "checkout.change_checkoutsession",  # regenerate
        "checkout.view_invoice",
        "checkout.view_invoiceline",
        "checkout.view_portalsession",
        "entitlements.view_grant",
        "entitlements.add_grant",
        "entitlements.change_grant",  # revoke
        "entitlements.view_entitlement",
        "entitlements.view_purchase",
        "entitlements.view_subscriptionrecord",
        "webhooks.view_processorevent",
        # The apps' notification endpoints (never their secrets) and what was sent to them.
        "entitlements.view_notificationendpoint",
        "entitlements.view_notification",
        "entitlements.view_delivery",
        "common.view_auditlog",
    ),
    # Runs the machinery: replays, reconciliation runs, periodic jobs and their schedules, API keys,
    # notification endpoints.
    # No money rows, no discrepancy resolves.
    OPS: (
        "projects.view_project",
        "projects.view_app",
        "projects.view_apikey",
        "projects.add_apikey",  # issue (the key is shown once; its digest never)
        "projects.change_apikey",  # revoke
        "webhooks.view_processorevent",
        "webhooks.change_processorevent",  # replay
        "webhooks.view_replayrun",
        # The apps' notification endpoints: added, changed, rotated, deleted; notifications replayed.
        "entitlements.view_notificationendpoint",
        "entitlements.add_notificationendpoint",
        "entitlements.change_notificationendpoint",  # also rotate, enable, disable
        "entitlements.delete_notificationendpoint",
        "entitlements.view_notification",
        "entitlements.change_notification",  # replay (the rows stay read-only)
        "entitlements.view_delivery",
        "entitlements.change_delivery",  # replay
        "reconciliation.view_reconciliationrun",
        "reconciliation.run_reconciliation",
        "reconciliation.view_synccursor",
        "recovery.view_recoveryrun",  # its "run now" button (common.run_job)
        "common.run_job",
        "common.view_jobpolicy",
        "common.change_jobpolicy",
        "common.view_jobrun",
        "common.view_auditlog",
        "django_celery_beat.view_periodictask",
        "django_celery_beat.change_periodictask",
        "django_celery_beat.view_intervalschedule",
        "django_celery_beat.view_crontabschedule",
    ),
}


class UnknownPermission(Exception):
    """A codename in ROLES that no installed model declares (a typo, or a model that went away)."""


@dataclass(frozen=True)
class RoleChange:
    role: str
    created: bool
    added: tuple[str, ...]
    removed: tuple[str, ...]


def _label(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def _permissions(names: tuple[str, ...]) -> list[Permission]:
    wanted = set(names)
    found = [
        p
        for p in Permission.objects.select_related("content_type").filter(
            codename__in={name.split(".", 1)[1] for name in wanted}
        )
        if _label(p) in wanted
    ]
    missing = wanted - {_label(p) for p in found}
    if missing:
        raise UnknownPermission(f"no such permission: {', '.join(sorted(missing))} (run migrate first?)")
    return found


@transaction.atomic
def roles_install() -> list[RoleChange]:
    """Sets each role's group to exactly its ROLES permissions; returns what changed (nothing on a re-run)."""
    changes: list[RoleChange] = []
    for role, names in ROLES.items():
        group, created = Group.objects.get_or_create(name=role)
        wanted = {_label(p): p for p in _permissions(names)}
        held = {_label(p): p for p in group.permissions.select_related("content_type")}
        added = sorted(wanted.keys() - held.keys())
        removed = sorted(held.keys() - wanted.keys())
        group.permissions.add(*(wanted[name] for name in added))
        group.permissions.remove(*(held[name] for name in removed))
        changes.append(RoleChange(role=role, created=created, added=tuple(added), removed=tuple(removed)))
    return changes


# --- demo users (seed_demo) ----------------------------------------------------------------------

# Development only: seed_demo refuses to run when DJANGO_ENV=production, and so does this.
DEMO_ROLE_PASSWORDS: dict[str, str] = {
    FINANCE: "finance-demo",
    SUPPORT: "support-demo",
    OPS: "ops-demo",
}


@transaction.atomic
def demo_role_users_create() -> dict[str, str]:
    """One staff user per role, named after it, in its group; returns username -> password.

    An existing user is left as it is (a developer may have changed the password), but put back in its group.
    """
    if settings.IS_PRODUCTION:
        raise RuntimeError("demo role users have known passwords; they are never created in production")
    roles_install()
    user_model = get_user_model()
    for role, password in DEMO_ROLE_PASSWORDS.items():
        user = user_model.objects.filter(username=role).first()
        if user is None:
            user = user_model.objects.create_user(role, f"{role}@example.invalid", password, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
    return dict(DEMO_ROLE_PASSWORDS)
