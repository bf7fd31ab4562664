from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing_service.env import env_bool, env_choice, env_int, env_list, env_url

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k3Jd9-production-like-secret-with-enough-length-and-variety-0192837465",
    "ALLOWED_HOSTS": "billing.internal.example",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ENV", "SECRET_KEY", "ALLOWED_HOSTS")}
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
