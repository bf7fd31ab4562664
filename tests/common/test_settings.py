from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing_service.env import (
    env_bool,
    env_choice,
    env_choice_aliased,
    env_int,
    env_list,
    env_secrets,
    env_url,
)

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k3Jd9-production-like-secret-with-enough-length-and-variety-0192837465",
    "ALLOWED_HOSTS": "billing.internal.example",
}


# Read from the caller's environment, so dropped before each subprocess sets its own.
_OWN_VARIABLES = (
    "DJANGO_ENV",
    "ENVIRONMENT",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_WEBHOOK_SECRETS",
)


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _OWN_VARIABLES}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env, "VAR_DIR": str(ROOT / "var" / "check-deploy")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_mode_passes_check_deploy_with_no_warnings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_mode_refuses_to_start_without_a_secret_key() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_mode_refuses_debug() -> None:
    result = _manage("check", env={**PRODUCTION_ENV, "DJANGO_DEBUG": "true"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG must not be on" in result.stderr


def test_a_malformed_value_stops_the_process_instead_of_being_guessed() -> None:
    result = _manage("check", env={"DJANGO_ENV": "development", "API_KEY_CACHE_SECONDS": "sixty"})
    assert result.returncode != 0
    assert "API_KEY_CACHE_SECONDS='sixty' is not an integer" in result.stderr


@pytest.mark.parametrize(
    ("reader", "value", "message"),
    [
        (lambda: env_bool("X_FLAG", False), "maybe", "is not a boolean"),
        (lambda: env_int("X_NUM", 1, minimum=1), "0", "below the minimum"),
        (lambda: env_int("X_NUM", 1), "1.5", "is not an integer"),
        (lambda: env_choice("X_CHOICE", "a", ("a", "b")), "c", "must be one of a, b"),
        (lambda: env_url("X_URL", ("postgres",)), "mysql://db/x", "must use one of the schemes postgres"),
    ],
)
def test_env_helpers_raise_on_malformed_values(
    monkeypatch: pytest.MonkeyPatch, reader: object, value: str, message: str
) -> None:
    for name in ("X_FLAG", "X_NUM", "X_CHOICE", "X_URL"):
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader()  # type: ignore[operator]


def test_env_choice_aliased_reads_either_name_and_refuses_a_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    choices = ("a", "b")
    assert env_choice_aliased("X_MAIN", "X_ALIAS", "a", choices) == "a"
    monkeypatch.setenv("X_ALIAS", "b")
    assert env_choice_aliased("X_MAIN", "X_ALIAS", "a", choices) == "b"
    monkeypatch.setenv("X_MAIN", "b")
    assert env_choice_aliased("X_MAIN", "X_ALIAS", "a", choices) == "b"
    monkeypatch.setenv("X_MAIN", "a")
    with pytest.raises(ImproperlyConfigured, match="X_MAIN='a' and its alias X_ALIAS='b' disagree"):
        env_choice_aliased("X_MAIN", "X_ALIAS", "a", choices)
    monkeypatch.delenv("X_MAIN")
    monkeypatch.setenv("X_ALIAS", "c")
    with pytest.raises(ImproperlyConfigured, match="X_ALIAS='c' must be one of a, b"):
        env_choice_aliased("X_MAIN", "X_ALIAS", "a", choices)


def test_env_secrets_merges_the_single_one_in_front_without_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_secrets("X_SECRETS", "X_SECRET") == []
    monkeypatch.setenv("X_SECRETS", "s2, s1,s2")
    monkeypatch.setenv("X_SECRET", "s1")
    assert env_secrets("X_SECRETS", "X_SECRET") == ["s1", "s2"]
    monkeypatch.setenv("X_SECRET", "s1,s3")
    with pytest.raises(ImproperlyConfigured, match="X_SECRET holds one secret"):
        env_secrets("X_SECRETS", "X_SECRET")


def test_env_helpers_read_good_values_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLAG", "off")
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    assert env_bool("X_FLAG", True) is False
    assert env_bool("X_UNSET_FLAG", True) is True
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    assert env_int("X_UNSET_NUM", 7) == 7


@pytest.mark.django_db
def test_ci_runs_on_postgresql_and_redis() -> None:
    """In CI the suite must hit the real services; elsewhere this states which ones it used."""
    from django.conf import settings
    from django.db import connection

    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        assert connection.vendor == ("postgresql" if settings.DATABASE_URL else "sqlite")
        return
    assert connection.vendor == "postgresql"
    assert settings.CACHES["default"]["BACKEND"].endswith("redis.RedisCache")


def _setting(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Prints one setting as JSON from a fresh import of the settings module (DJANGO_ENV=test: no .env).

    Importing the module alone is enough for what settings compute, and a third of `manage.py`'s cost.
    """
    clean = {k: v for k, v in os.environ.items() if k not in _OWN_VARIABLES}
    code = f"import json, billing_service.settings as s; print(json.dumps(s.{name}))"
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_ENV": "test", **env, "VAR_DIR": str(ROOT / "var" / "check-deploy")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_one"}, ["whsec_one"]),
        ({"STRIPE_WEBHOOK_SECRETS": "whsec_a, whsec_b"}, ["whsec_a", "whsec_b"]),
        (
            {"STRIPE_WEBHOOK_SECRET": "whsec_b", "STRIPE_WEBHOOK_SECRETS": "whsec_a,whsec_b,whsec_c"},
            ["whsec_b", "whsec_a", "whsec_c"],
        ),
    ],
)
def test_the_single_webhook_secret_and_the_rotation_list_are_merged(env: dict[str, str], expected: list[str]) -> None:
    result = _setting("STRIPE_WEBHOOK_SECRETS", env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_a_list_in_the_single_webhook_secret_is_refused() -> None:
    result = _setting("STRIPE_WEBHOOK_SECRETS", {"STRIPE_WEBHOOK_SECRET": "whsec_a,whsec_b"})
    assert result.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET holds one secret" in result.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ENVIRONMENT": "test"}, "test"),
        ({"DJANGO_ENV": "test", "ENVIRONMENT": "test"}, "test"),
    ],
)
def test_environment_is_an_alias_of_django_env(env: dict[str, str], expected: str) -> None:
    result = _setting("DJANGO_ENV", {"DJANGO_ENV": "", **env})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_django_env_and_environment_that_disagree_stop_the_process() -> None:
    result = _manage("check", env={"DJANGO_ENV": "test", "ENVIRONMENT": "production"})
    assert result.returncode != 0
    assert "DJANGO_ENV='test' and its alias ENVIRONMENT='production' disagree" in result.stderr


def test_production_through_the_environment_alias_applies_production_rules() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in ("DJANGO_ENV", "SECRET_KEY")}
    result = _manage("check", env={**env, "ENVIRONMENT": "production"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
