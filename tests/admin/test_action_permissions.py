"""Admin actions need the permission of what they do, not just the right to look at the list."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from apps.entitlements.models import Grant
from apps.projects.models import ApiKey
from tests.conftest import Tenant
from tests.factories import GrantFactory

pytestmark = pytest.mark.django_db


def _staff_with(client: Client, *codenames: str) -> Client:
    user = get_user_model().objects.create_user("clerk", "clerk@example.invalid", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def _offered(client: Client, url: str) -> set[str]:
    form = client.get(url).context["action_form"]
    return set(dict(form.fields["action"].choices)) - {""} if form is not None else set()


def test_a_view_only_account_cannot_revoke_grants(client: Client, alice: Tenant) -> None:
    staff = _staff_with(client, "view_grant")
    grant = GrantFactory.create(project=alice.project)
    assert "revoke" not in _offered(staff, "/admin/entitlements/grant/")
    staff.post("/admin/entitlements/grant/", {"action": "revoke", "_selected_action": [grant.pk], "reason": "x"})
    assert Grant.objects.get(pk=grant.pk).revoked_at is None


def test_a_view_only_account_cannot_issue_or_revoke_keys(client: Client, alice: Tenant) -> None:
    staff = _staff_with(client, "view_app", "view_apikey")
    assert "issue_key" not in _offered(staff, "/admin/projects/app/")
    assert "revoke" not in _offered(staff, "/admin/projects/apikey/")
    before = ApiKey.objects.count()
    staff.post("/admin/projects/app/", {"action": "issue_key", "_selected_action": [alice.app.pk], "index": 0})
    key = ApiKey.objects.get(app=alice.app)
    staff.post("/admin/projects/apikey/", {"action": "revoke", "_selected_action": [key.pk], "index": 0})
    assert ApiKey.objects.count() == before and ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_the_matching_permissions_offer_the_actions(client: Client, alice: Tenant) -> None:
    staff = _staff_with(client, "view_grant", "change_grant", "view_app", "add_apikey", "view_apikey", "change_apikey")
    assert "revoke" in _offered(staff, "/admin/entitlements/grant/")
    assert "issue_key" in _offered(staff, "/admin/projects/app/")
    assert "revoke" in _offered(staff, "/admin/projects/apikey/")
