"""The project change page: the only place to edit a project's allowlist, feature codes, grace days
and refund policy. It answered 500 (slug both prepopulated and read-only)."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.projects.models import Project
from tests.conftest import Tenant, committed

pytestmark = pytest.mark.django_db


def test_the_project_change_page_opens_with_the_slug_read_only(staff: Client, alice: Tenant) -> None:
    page = staff.get(f"/admin/projects/project/{alice.project.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert "slug" not in form.fields
    assert {"allowed_redirect_prefixes", "feature_codes", "past_due_grace_days", "revoke_on_partial_refund"} <= set(
        form.fields
    )


def test_the_add_page_still_fills_the_slug_from_the_name(staff: Client) -> None:
    page = staff.get("/admin/projects/project/add/")
    assert page.status_code == 200
    assert [field["field"].name for field in page.context["prepopulated_fields"]] == ["slug"]


def test_the_change_page_saves_the_policy_and_keeps_the_slug(staff: Client, alice: Tenant) -> None:
    with committed():
        response = staff.post(
            f"/admin/projects/project/{alice.project.pk}/change/",
            {
                "name": "Alpha renamed",
                "slug": "hijacked",  # read-only: ignored
                "allowed_redirect_prefixes": '["https://alpha.example/", "https://app.alpha.example/"]',
                "active": "on",
                "feature_codes": '["pro", "export"]',
                "past_due_grace_days": "7",
                "revoke_on_partial_refund": "on",
            },
        )
    assert response.status_code == 302, response.content.decode()[:3000]
    project = Project.objects.get(pk=alice.project.pk)
    assert project.slug == "alpha" and project.name == "Alpha renamed"
    assert project.allowed_redirect_prefixes == ["https://alpha.example/", "https://app.alpha.example/"]
    assert project.feature_codes == ["pro", "export"]
    assert project.past_due_grace_days == 7 and project.revoke_on_partial_refund is True


def test_the_change_page_refuses_an_unsafe_redirect_prefix(staff: Client, alice: Tenant) -> None:
    response = staff.post(
        f"/admin/projects/project/{alice.project.pk}/change/",
        {
            "name": "Alpha",
            "allowed_redirect_prefixes": '["javascript:alert(1)"]',
            "active": "on",
            "feature_codes": "[]",
            "past_due_grace_days": "3",
        },
    )
    assert response.status_code == 200  # the form again, with its error
    assert response.context["adminform"].form.errors["allowed_redirect_prefixes"]
    assert Project.objects.get(pk=alice.project.pk).allowed_redirect_prefixes == ["https://alpha.example/"]


def test_the_change_page_edits_allow_multiple_subscriptions(staff: Client, alice: Tenant) -> None:
    page = staff.get(f"/admin/projects/project/{alice.project.pk}/change/")
    assert "allow_multiple_subscriptions" in page.context["adminform"].form.fields
    with committed():
        staff.post(
            f"/admin/projects/project/{alice.project.pk}/change/",
            {
                "name": "Alpha",
                "allowed_redirect_prefixes": '["https://alpha.example/"]',
                "active": "on",
                "feature_codes": "[]",
                "past_due_grace_days": "3",
                "allow_multiple_subscriptions": "on",
            },
        )
    assert Project.objects.get(pk=alice.project.pk).allow_multiple_subscriptions is True
