from __future__ import annotations

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import models

from apps.projects.keys import generate_key, key_digest, prefix_of
from apps.projects.models import ApiKey
from apps.projects.services import api_key_rotate
from tests.conftest import Tenant


def test_a_generated_key_has_a_visible_prefix_and_a_long_secret() -> None:
    key = generate_key()
    assert key.raw.startswith(f"bk_{key.prefix}_")
    assert len(key.raw.split("_", 2)[2]) >= 43  # 32 random bytes, url-safe base64
    assert prefix_of(key.raw) == key.prefix
    assert generate_key().raw != key.raw


def test_the_digest_is_keyed_by_the_pepper(settings: object) -> None:
    key = generate_key()
    before = key_digest(key.raw)
    settings.API_KEY_PEPPER = "another-pepper"  # type: ignore[attr-defined]
    assert key_digest(key.raw) != before


@pytest.mark.parametrize("raw", ["", "bk_", "bk_abc_def", "sk_abcdefgh_" + "a" * 43, "bk_abcdefgh_" + "a" * 200])
def test_prefix_of_refuses_anything_but_a_well_formed_key(raw: str) -> None:
    assert prefix_of(raw) is None


def _every_stored_text() -> list[str]:
    texts: list[str] = []
    for model in apps.get_models():
        text_types = (models.CharField, models.TextField, models.JSONField)
        text_fields = [f.attname for f in model._meta.concrete_fields if isinstance(f, text_types)]
        if not text_fields:
            continue
        for row in model._default_manager.values_list(*text_fields):
            texts.extend(str(value) for value in row if value is not None)
    return texts


@pytest.mark.django_db
def test_the_raw_key_appears_in_no_database_row(alice: Tenant, client: object) -> None:
    _, rotated, _ = api_key_rotate(app=alice.app)
    # Use the keys, so that every write a request makes (last_used_at, logs) has happened too.
    assert alice.client().get("/api/v1/me").status_code == 200
    stored = ApiKey.objects.get(app=alice.app, label="initial")
    assert stored.digest == key_digest(alice.key)
    texts = _every_stored_text()
    assert texts, "the scan must have read something"
    for raw in (alice.key, rotated):
        secret = raw.split("_", 2)[2]
        assert not any(secret in text for text in texts)


@pytest.mark.django_db
def test_create_app_output_is_the_only_place_the_key_appears(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_project", name="Gamma", slug="gamma", redirect_prefix=["https://gamma.example/"])
    call_command("create_app", project="gamma", name="web", scope=["entitlements:read"])
    out = capsys.readouterr().out
    raw = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("API key"))
    assert prefix_of(raw) is not None
    assert not any(raw.split("_", 2)[2] in text for text in _every_stored_text())
