"""manage.py smoke_fulfillment: in this process, and against a live server over HTTP."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.entitlements.notifications.models import Notification, NotificationEndpoint
from apps.entitlements.notifications.smoke import InProcessService
from apps.projects.models import Scope
from tests.conftest import make_tenant


@pytest.mark.django_db
def test_in_process_a_signed_notification_arrives_for_the_grant_and_the_revoke() -> None:
    out = StringIO()
    call_command("smoke_fulfillment", "--in-process", "--timeout", "10", stdout=out)
    text = out.getvalue()
    assert "shows it active" in text and "shows it inactive" in text
    assert "smoke fulfillment passed" in text and "2 signed notifications" in text
    # It cleans up after itself: no endpoint left; the two notifications stay in the outbox log.
    assert not NotificationEndpoint.objects.exists()
    versions = sorted(n.data["version"] for n in Notification.objects.filter(user_id__startswith="smoke-"))
    assert versions == [1, 2]


@pytest.mark.django_db
def test_in_process_it_fails_when_no_notification_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(InProcessService, "pump", lambda self, endpoint: None)  # no worker delivers
    with pytest.raises(CommandError, match=r"no signed notification about smoke-\w+ arrived within 0\.5s"):
        call_command("smoke_fulfillment", "--in-process", "--timeout", "0.5", stdout=StringIO())
    assert not NotificationEndpoint.objects.exists()  # deleted although the check failed


def test_it_needs_a_mode() -> None:
    with pytest.raises(CommandError, match="--base-url"):
        call_command("smoke_fulfillment", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_over_http_against_a_live_server(live_server: Any) -> None:
    # The live server's commits wake the worker in eager mode (the suite's), in the server's thread:
    # as a real worker would, after the commit.
    tenant = make_tenant("smokehttp", scopes=[Scope.ADMIN_WRITE, Scope.ENTITLEMENTS_READ])
    tenant.project.feature_codes = ["reports"]
    tenant.project.save(update_fields=["feature_codes"])
    out = StringIO()
    call_command(
        "smoke_fulfillment",
        "--base-url",
        live_server.url,
        "--api-key",
        tenant.key,
        "--feature-code",
        "reports",
        "--timeout",
        "10",
        stdout=out,
    )
    text = out.getvalue()
    assert f"app {tenant.app.pk}" in text and "smoke fulfillment passed" in text
    assert not NotificationEndpoint.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_over_http_a_key_without_admin_write_fails_and_leaves_no_endpoint(live_server: Any) -> None:
    tenant = make_tenant("smokero", scopes=[Scope.ENTITLEMENTS_READ])
    tenant.project.feature_codes = ["reports"]
    tenant.project.save(update_fields=["feature_codes"])
    with pytest.raises(CommandError, match=r"FAILED POST /api/v1/admin/grant: HTTP 403"):
        call_command(
            "smoke_fulfillment",
            "--base-url",
            live_server.url,
            "--api-key",
            tenant.key,
            "--feature-code",
            "reports",
            stdout=StringIO(),
        )
    assert not NotificationEndpoint.objects.exists()
