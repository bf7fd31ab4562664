"""The admin's grant form: "valid from" may be left blank and then means now, as in the API; the
grant is made by grants.grant_create, so the audit entry and the entitlement recompute happen."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.common.models import AuditLog
from apps.entitlements.models import Entitlement, Grant
from tests.conftest import Tenant, committed

pytestmark = pytest.mark.django_db

ADD = "/admin/entitlements/grant/add/"


@pytest.fixture
def pro(alice: Tenant) -> Tenant:
    alice.project.feature_codes = ["pro"]
    alice.project.save()
    return alice


def _form(tenant: Tenant, **overrides: str) -> dict[str, Any]:
    return {
        "project": tenant.project.pk,
        "user_id": "u7",
        "feature_code": "pro",
        "reason": "support ticket 123",
        "valid_from_0": "",
        "valid_from_1": "",
        "valid_to_0": "",
        "valid_to_1": "",
        **overrides,
    }


def test_the_add_form_does_not_require_valid_from(staff: Client, pro: Tenant) -> None:
    form = staff.get(ADD).context["adminform"].form
    assert form.fields["valid_from"].required is False
    assert "blank to start now" in form.fields["valid_from"].help_text


def test_a_grant_without_valid_from_starts_now_through_the_service(staff: Client, pro: Tenant) -> None:
    before = timezone.now()
    with committed():
        response = staff.post(ADD, _form(pro))
    assert response.status_code == 302, response.content.decode()[:3000]
    grant = Grant.objects.get(user_id="u7")
    assert before <= grant.valid_from <= timezone.now()
    assert grant.valid_to is None and grant.granted_by == "support"
    # What grant_create does and a plain ModelAdmin save would not: the audit entry, the projection.
    audit = AuditLog.objects.get(action="grant.create")
    assert audit.target == f"grant #{grant.pk}" and audit.reason == "support ticket 123" and audit.actor == "support"
    assert Entitlement.objects.filter(project=pro.project, user_id="u7", source="grant", source_id=grant.pk).exists()
    assert response["Location"].endswith("/admin/entitlements/grant/")


def test_a_given_valid_from_is_kept(staff: Client, pro: Tenant) -> None:
    with committed():
        staff.post(ADD, _form(pro, valid_from_0="2026-01-01", valid_from_1="00:00:00"))
    assert Grant.objects.get(user_id="u7").valid_from.isoformat() == "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("valid_from", "valid_to", "error"),
    [
        ("", "2020-01-01", "Has already passed"),  # blank start: now, and the end is before it
        ("2019-01-01", "2020-01-01", "Has already passed"),  # grant_create refuses a grant over already
        ("2099-06-01", "2099-01-01", "Must be after valid from"),
    ],
)
def test_a_window_the_service_would_refuse_is_a_form_error_not_a_500(
    staff: Client, pro: Tenant, valid_from: str, valid_to: str, error: str
) -> None:
    times = {"valid_from_1": "00:00:00" if valid_from else "", "valid_to_1": "00:00:00"}
    response = staff.post(ADD, _form(pro, valid_from_0=valid_from, valid_to_0=valid_to, **times))
    assert response.status_code == 200
    assert error in str(response.context["adminform"].form.errors["valid_to"])
    assert not Grant.objects.exists() and not AuditLog.objects.exists()
