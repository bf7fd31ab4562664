from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.projects.keys import prefix_of
from apps.projects.models import ApiKey, App
from tests.conftest import Tenant, committed
from tests.factories import SuperuserFactory
from tests.projects.test_keys import _every_stored_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(SuperuserFactory.create(username="support"))
    return client


def _key_in(html: str) -> str | None:
    match = re.search(r"<code>(bk_[a-z0-9]{8}_[A-Za-z0-9_-]+)</code>", html)
    return match.group(1) if match else None


def test_adding_a_key_shows_it_once(staff: Client, alice: Tenant) -> None:
    response = staff.post("/admin/projects/apikey/add/", {"app": alice.app.pk, "label": "ci"}, follow=True)
    assert response.status_code == 200
    raw = _key_in(response.content.decode())
    assert raw is not None and prefix_of(raw) is not None
    key = ApiKey.objects.get(prefix=prefix_of(raw))
    assert key.label == "ci" and key.created_by == "support"
    # Shown once: the key's own page and the list never show it again.
    again = staff.get(f"/admin/projects/apikey/{key.pk}/change/").content.decode()
    assert raw not in again and key.prefix in again
    assert raw not in staff.get("/admin/projects/apikey/").content.decode()
    assert not any(raw.split("_", 2)[2] in text for text in _every_stored_text())


def test_adding_an_app_issues_its_first_key(staff: Client, alice: Tenant) -> None:
    response = staff.post(
        "/admin/projects/app/add/",
        {
            "project": alice.project.pk,
            "name": "mobile",
            "active": "on",
            "scopes": ["entitlements:read"],
            "rate_limit": "",
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert response.status_code == 200
    app = App.objects.get(name="mobile")
    assert app.scopes == ["entitlements:read"]
    raw = _key_in(response.content.decode())
    assert raw is not None and ApiKey.objects.get(prefix=prefix_of(raw)).app == app


def test_the_revoke_action_ends_keys_at_once(staff: Client, alice: Tenant) -> None:
    api = alice.client()
    assert api.get("/api/v1/me").status_code == 200
    key = ApiKey.objects.get(app=alice.app)
    with committed():
        response = staff.post(
            "/admin/projects/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True
        )
    assert "Revoked 1 key(s)" in response.content.decode()
    assert api.get("/api/v1/me").status_code == 401


def test_deactivating_an_app_in_the_admin_ends_its_keys(staff: Client, alice: Tenant) -> None:
    api = alice.client()
    assert api.get("/api/v1/me").status_code == 200
    with committed():
        response = staff.post(
            f"/admin/projects/app/{alice.app.pk}/change/",
            {
                "project": alice.project.pk,
                "name": "app",
                "scopes": ["ops"],
                "rate_limit": "",
                "keys-TOTAL_FORMS": "1",
                "keys-INITIAL_FORMS": "1",
                "keys-0-id": ApiKey.objects.get(app=alice.app).pk,
                "keys-0-app": alice.app.pk,
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert api.get("/api/v1/me").status_code == 401


def test_keys_cannot_be_deleted_only_revoked(staff: Client, alice: Tenant) -> None:
    key = ApiKey.objects.get(app=alice.app)
    assert staff.get(f"/admin/projects/apikey/{key.pk}/delete/").status_code == 403
