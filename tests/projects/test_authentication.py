from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.projects.models import ApiKey
from apps.projects.services import api_key_revoke, api_key_rotate, app_update, project_update
from tests.conftest import Tenant, committed

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"


def test_it_answers_a_valid_key_with_its_app_and_project(alice: Tenant) -> None:
    response = alice.client().get(ME)
    assert response.status_code == 200
    body = response.json()
    assert body["project"] == {"id": alice.project.pk, "slug": "alpha"}
    assert body["app"]["id"] == alice.app.pk
    assert body["key_prefix"] == alice.key.split("_")[1]


def test_it_rejects_a_missing_key_with_401_and_says_so(alice: Tenant) -> None:
    response = APIClient().get(ME)
    assert response.status_code == 401
    assert response.json() == {"detail": "Missing X-API-Key header."}
    assert response["WWW-Authenticate"] == "X-API-Key"


@pytest.mark.parametrize(
    "key",
    ["nonsense", "bk_short_x", "bk_abcdefgh_" + "A" * 43, "bk_ABCDEFGH_" + "A" * 43, "bk_abcdefgh_" + "\u00e9" * 20],
)
def test_it_rejects_malformed_and_unknown_keys_with_401(alice: Tenant, key: str) -> None:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid, revoked or inactive API key."}


def test_it_rejects_a_right_prefix_with_a_wrong_secret(alice: Tenant) -> None:
    prefix = alice.key.split("_")[1]
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=f"bk_{prefix}_" + "x" * 43)
    assert client.get(ME).status_code == 401


def test_a_revoked_key_fails_on_the_next_request_although_keys_are_cached(alice: Tenant) -> None:
    client = alice.client()
    assert client.get(ME).status_code == 200  # warms the cache
    assert client.get(ME).status_code == 200  # served from the cache
    with committed():
        api_key_revoke(key=ApiKey.objects.get(app=alice.app))
    response = client.get(ME)
    assert response.status_code == 401


def test_an_inactive_app_fails_on_the_next_request(alice: Tenant) -> None:
    client = alice.client()
    assert client.get(ME).status_code == 200
    with committed():
        app_update(app=alice.app, active=False)
    assert client.get(ME).status_code == 401


def test_an_inactive_project_fails_on_the_next_request(alice: Tenant) -> None:
    client = alice.client()
    assert client.get(ME).status_code == 200
    with committed():
        project_update(project=alice.project, active=False)
    assert client.get(ME).status_code == 401


def test_rotation_keeps_the_old_key_live_until_it_is_revoked(alice: Tenant) -> None:
    old = alice.client()
    assert old.get(ME).status_code == 200
    with committed():
        new_key, raw, revoked = api_key_rotate(app=alice.app)
    assert revoked == []
    new = APIClient()
    new.credentials(HTTP_X_API_KEY=raw)
    assert new.get(ME).status_code == 200
    assert old.get(ME).status_code == 200

    with committed():
        api_key_revoke(key=ApiKey.objects.get(app=alice.app, label="initial"))
    assert old.get(ME).status_code == 401
    assert new.get(ME).status_code == 200
    assert new.get(ME).json()["key_prefix"] == new_key.prefix


def test_rotation_with_revoke_others_ends_every_old_key(alice: Tenant) -> None:
    old = alice.client()
    assert old.get(ME).status_code == 200
    with committed():
        _, raw, revoked = api_key_rotate(app=alice.app, revoke_others=True)
    assert revoked == [alice.key.split("_")[1]]
    assert old.get(ME).status_code == 401
    new = APIClient()
    new.credentials(HTTP_X_API_KEY=raw)
    assert new.get(ME).status_code == 200


def test_a_key_works_only_for_its_own_app(alice: Tenant, bob: Tenant) -> None:
    assert alice.client().get(ME).json()["project"]["slug"] == "alpha"
    assert bob.client().get(ME).json()["project"]["slug"] == "bravo"


def test_last_used_at_is_written_once_per_interval_not_per_request(alice: Tenant) -> None:
    client = alice.client()
    client.get(ME)
    first = ApiKey.objects.get(app=alice.app).last_used_at
    assert first is not None
    for _ in range(5):
        client.get(ME)
    assert ApiKey.objects.get(app=alice.app).last_used_at == first
