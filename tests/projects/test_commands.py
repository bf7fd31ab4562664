from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from apps.projects.models import ApiKey, App, Project
from tests.conftest import Tenant, committed
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _key_from(out: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("API key"))


def _me(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return int(client.get("/api/v1/me").status_code)


def test_create_project_and_app_give_a_working_key(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_project", name="Gamma", slug="gamma", redirect_prefix=["https://gamma.example/"])
    call_command("create_app", project="gamma", name="web", scope=["entitlements:read", "checkout:write"])
    key = _key_from(capsys.readouterr().out)
    assert _me(key) == 200
    app = App.objects.get(project__slug="gamma", name="web")
    assert app.scopes == ["checkout:write", "entitlements:read"]


def test_create_project_rejects_a_bad_redirect_prefix() -> None:
    with pytest.raises(CommandError, match="not an absolute http"):
        call_command("create_project", name="Bad", slug="bad", redirect_prefix=["ftp://x"])
    assert not Project.objects.filter(slug="bad").exists()


def test_create_app_needs_an_existing_project() -> None:
    with pytest.raises(CommandError, match="no project with slug"):
        call_command("create_app", project="nope", name="web")


def test_rotate_key_then_revoke_key(alice: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    with committed():
        call_command("rotate_key", project="alpha", app="app")
    new_key = _key_from(capsys.readouterr().out)
    assert _me(new_key) == 200
    assert _me(alice.key) == 200
    with committed():
        call_command("revoke_key", alice.key.split("_")[1])
    assert "revoked" in capsys.readouterr().out
    assert _me(alice.key) == 401
    assert _me(new_key) == 200


def test_rotate_key_with_revoke_old(alice: Tenant, capsys: pytest.CaptureFixture[str]) -> None:
    with committed():
        call_command("rotate_key", project="alpha", app="app", revoke_old=True)
    assert _me(_key_from(capsys.readouterr().out)) == 200
    assert _me(alice.key) == 401


def test_revoke_key_accepts_the_whole_key_and_reports_unknown_ones(alice: Tenant) -> None:
    with committed():
        call_command("revoke_key", alice.key)
    assert ApiKey.objects.get(app=alice.app).revoked_at is not None
    with pytest.raises(CommandError, match="no API key"):
        call_command("revoke_key", "zzzzzzzz")


def test_seed_demo_is_idempotent_and_its_key_works(capsys: pytest.CaptureFixture[str], settings: object) -> None:
    call_command("seed_demo", base_url="http://127.0.0.1:8000")
    call_command("seed_demo", base_url="http://127.0.0.1:8000")
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8000/api/docs/" in out
    assert Project.objects.filter(slug="demo").count() == 1
    assert ApiKey.objects.filter(app__project__slug="demo").count() == 1
    assert _me(settings.DEMO_API_KEY) == 200  # type: ignore[attr-defined]


def test_seed_demo_refuses_production(settings: object) -> None:
    settings.IS_PRODUCTION = True  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match="never runs in production"):
        call_command("seed_demo")
    assert not Project.objects.filter(slug="demo").exists()


def test_seed_demo_declares_labs_and_allows_app_local_so_the_api_guide_examples_work(settings: object) -> None:
    from apps.projects.redirects import url_is_allowed

    call_command("seed_demo", base_url="http://127.0.0.1:18080")
    project = Project.objects.get(slug="demo")
    assert "labs" in project.feature_codes
    assert url_is_allowed("https://app.local/success", project.allowed_redirect_prefixes)
    assert url_is_allowed("http://127.0.0.1:18080/success", project.allowed_redirect_prefixes)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=settings.DEMO_API_KEY)  # type: ignore[attr-defined]
    grant = {"user_id": "user_42", "project_id": project.pk, "feature_code": "labs"}
    grant |= {"granted_by": "support@spacehq", "reason": "VIP pilot"}
    response = client.post("/api/v1/admin/grant", grant, format="json")
    assert response.status_code == 201, response.content


def test_seed_demo_brings_an_older_demo_project_up_to_date_and_keeps_its_settings() -> None:
    ProjectFactory.create(
        slug="demo", name="Demo", allowed_redirect_prefixes=["https://mine.example/"], feature_codes=["beta"]
    )
    call_command("seed_demo", base_url="http://127.0.0.1:8000")
    project = Project.objects.get(slug="demo")
    assert project.feature_codes == ["beta", "labs"]
    assert {"https://mine.example/", "https://app.local/", "http://127.0.0.1:8000/"} <= set(
        project.allowed_redirect_prefixes
    )
