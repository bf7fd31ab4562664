"""Admin login protection: lockout after repeated failures, idle expiry, login logs, the admin's path."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import clear_url_caches, reverse

import billing_service.urls

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/admin/login/"
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def carol(db: None) -> Any:
    return get_user_model().objects.create_user("carol", "carol@example.invalid", "right-password", is_staff=True)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    # structlog hands the standard library its event dict as the record's message.
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == name]


def _login(client: Client, password: str, request_id: str = "") -> int:
    headers = {"X-Request-ID": request_id} if request_id else {}
    response = client.post(LOGIN, {"username": "carol", "password": password, "next": "/admin/"}, headers=headers)
    return int(response.status_code)


def test_a_login_and_a_failed_login_are_logged_with_the_request_id(
    client: Client, carol: Any, logs: pytest.LogCaptureFixture
) -> None:
    assert _login(client, "wrong", request_id="req-failed-0001") == 200  # the form again, with its error
    assert _login(client, "right-password", request_id="req-login-0001") == 302
    [failed] = _events(logs, "admin.login_failed")
    [login] = _events(logs, "admin.login")
    assert (failed["username"], failed["request_id"], failed["path"]) == ("carol", "req-failed-0001", LOGIN)
    assert (login["username"], login["request_id"]) == ("carol", "req-login-0001")
    assert "wrong" not in logs.text and "right-password" not in logs.text


def test_five_failures_lock_the_account_out_for_an_hour_and_it_is_logged(
    client: Client, carol: Any, logs: pytest.LogCaptureFixture
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        assert [_login(client, "wrong") for _ in range(4)] == [200] * 4
        assert _login(client, "wrong", request_id="req-lockout-01") == 429  # the fifth locks
        assert _login(client, "right-password") == 429  # even the right password, now
        assert client.get("/admin/").status_code == 302  # not logged in
        # Logged when it happens, and again for each attempt it refuses.
        lockouts = _events(logs, "admin.lockout")
        assert (lockouts[0]["username"], lockouts[0]["request_id"]) == ("carol", "req-lockout-01")

        # An hour from the fifth failure, however often it is tried meanwhile.
        clock.shift(dt.timedelta(minutes=59))
        assert _login(client, "right-password") == 429
        clock.shift(dt.timedelta(minutes=2))
        assert _login(client, "right-password") == 302


def test_the_test_clients_login_still_works(client: Client, carol: Any) -> None:
    # Client.login authenticates without a request, which django-axes' own backend refuses outright.
    assert client.login(username="carol", password="right-password")
    assert client.get("/admin/").status_code == 200
    assert not Client().login(username="carol", password="wrong")


def test_a_lockout_is_per_user_and_address(client: Client, carol: Any) -> None:
    get_user_model().objects.create_user("dave", "dave@example.invalid", "dave-password", is_staff=True)
    for _ in range(5):
        _login(client, "wrong")
    other = Client()
    assert other.post(LOGIN, {"username": "dave", "password": "dave-password"}).status_code == 302
    elsewhere = Client(REMOTE_ADDR="10.1.2.3")
    assert elsewhere.post(LOGIN, {"username": "carol", "password": "right-password"}).status_code == 302


def test_an_idle_admin_session_expires(
    client: Client, carol: Any, logs: pytest.LogCaptureFixture, settings: Any
) -> None:
    settings.ADMIN_SESSION_IDLE_SECONDS = 1800
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(carol)
        assert client.get("/admin/").status_code == 200
        # Activity keeps it alive: each request starts the idle time again.
        for _ in range(3):
            clock.shift(dt.timedelta(seconds=1700))
            assert client.get("/admin/").status_code == 200
        clock.shift(dt.timedelta(seconds=1801))
        response = client.get("/admin/")
        assert response.status_code == 302 and response["Location"].startswith(LOGIN)
        assert client.get("/admin/").status_code == 302  # logged out, not just refused once
    [expired] = _events(logs, "admin.session_expired")
    assert expired["username"] == "carol" and expired["idle_seconds"] == 1801


def test_the_idle_limit_concerns_admin_paths_only(client: Client, carol: Any) -> None:
    with time_machine.travel(START, tick=False) as clock:
        client.force_login(carol)
        client.get("/admin/")
        clock.shift(dt.timedelta(hours=2))
        assert client.get("/health").status_code == 200
        assert "admin_last_seen" in client.session  # not refreshed by /health, not flushed either


@pytest.fixture
def staff_console(settings: Any) -> Iterator[None]:
    settings.ADMIN_URL = "staff-console/"
    importlib.reload(billing_service.urls)
    clear_url_caches()
    try:
        yield
    finally:
        settings.ADMIN_URL = "admin/"
        importlib.reload(billing_service.urls)
        clear_url_caches()


def test_admin_url_moves_the_admin(client: Client, carol: Any, staff_console: None, settings: Any) -> None:
    assert reverse("admin:index") == "/staff-console/"
    assert client.get("/admin/").status_code == 404
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.invalid", "pw"))
    assert client.get("/staff-console/").status_code == 200
    # The idle limit follows the admin to its new path.
    assert "admin_last_seen" in client.session


def _admin_url_setting(value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_service.test_settings", "ADMIN_URL": value}
    code = "import django; django.setup(); from django.conf import settings; print(settings.ADMIN_URL)"
    return subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_admin_url_is_normalised_and_refused_where_it_would_shadow_the_api() -> None:
    assert _admin_url_setting("/staff-console").stdout.strip().splitlines()[-1] == "staff-console/"
    refused = _admin_url_setting("api/")
    assert refused.returncode != 0 and "ADMIN_URL must be a path of its own" in refused.stderr
