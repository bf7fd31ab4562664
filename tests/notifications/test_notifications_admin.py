"""Notification endpoints, notifications and deliveries in the admin, as each role sees them.

Staff users hold only their role's permissions, as `install_roles` sets them. A secret is shown once,
in the message of the page that made it; no page shows it afterwards, to anyone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.utils import timezone

from apps.common.models import AuditLog
from apps.common.roles import FINANCE, OPS, SUPPORT, roles_install
from apps.entitlements.notifications import services
from apps.entitlements.notifications.models import Delivery, DeliveryAttempt, Notification, NotificationEndpoint
from tests.admin.role_clients import actions_offered, as_role
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db

A = "/admin/entitlements/"
ENDPOINTS = A + "notificationendpoint/"
NOTIFICATIONS = A + "notification/"
DELIVERIES = A + "delivery/"
HOOK = "https://alpha.example/hooks/billing"


@pytest.fixture(autouse=True)
def _roles(db: None) -> None:
    roles_install()


def _action(client: Client, url: str, action: str, pk: Any, **extra: str) -> Any:
    return client.post(url, {"action": action, "_selected_action": [pk], "index": 0, **extra}, follow=True)


def _endpoint(tenant: Tenant, url: str = HOOK, **fields: Any) -> NotificationEndpoint:
    return services.endpoint_create(app=tenant.app, url=url, actor="test", **fields)


def _failed_delivery(tenant: Tenant, endpoint: NotificationEndpoint) -> Delivery:
    notification = Notification.objects.create(
        project=tenant.project, type="entitlements.updated", user_id="u1", data={"user_id": "u1", "version": 3}
    )
    now = timezone.now()
    delivery = Delivery.objects.create(
        notification=notification, endpoint=endpoint, status="failed", attempts=1, failed_at=now, last_status_code=502
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, number=1, attempted_at=now, status_code=502, duration_ms=87, response_body="bad gateway here"
    )
    return delivery


def _secrets_of(endpoint: NotificationEndpoint) -> list[str]:
    endpoint.refresh_from_db()
    return [s for s in (endpoint.secret, endpoint.previous_secret) if s]


# --- endpoints ---------------------------------------------------------------------------------------


def test_ops_adds_an_endpoint_and_sees_its_secret_once(client: Client, alice: Tenant) -> None:
    staff = as_role(client, OPS)
    response = staff.post(
        ENDPOINTS + "add/",
        {"app": alice.app.pk, "url": HOOK, "event_types": ["entitlements.updated"], "enabled": "on", "_save": "1"},
        follow=True,
    )
    assert response.status_code == 200
    endpoint = NotificationEndpoint.objects.get(app=alice.app)
    assert (endpoint.url, endpoint.event_types, endpoint.enabled) == (HOOK, ["entitlements.updated"], True)
    shown = [str(m) for m in response.context["messages"]]
    assert any(endpoint.secret in m and "not shown again" in m for m in shown), shown
    # Never again: not on its page, not in the list, not on its app's page.
    for page in (ENDPOINTS, f"{ENDPOINTS}{endpoint.pk}/change/", f"/admin/projects/app/{alice.app.pk}/change/"):
        again = staff.get(page)
        assert again.status_code == 200, page
        assert endpoint.secret not in again.content.decode(), page
    entry = AuditLog.objects.get(action="notification_endpoint.create")
    assert entry.actor == "admin:ops-tester" and endpoint.secret not in str(entry.after)


def test_the_add_form_refuses_what_the_api_refuses(client: Client, alice: Tenant, settings: Any) -> None:
    settings.NOTIFICATION_ALLOW_HTTP = False
    staff = as_role(client, OPS)
    response = staff.post(ENDPOINTS + "add/", {"app": alice.app.pk, "url": "http://alpha.example/hook", "_save": "1"})
    assert response.status_code == 200
    assert "Must be an https URL" in response.content.decode()
    for n in range(services.ENDPOINTS_PER_APP_MAX):
        _endpoint(alice, f"{HOOK}/{n}")
    full = staff.post(ENDPOINTS + "add/", {"app": alice.app.pk, "url": HOOK, "_save": "1"})
    assert full.status_code == 200 and "at most 10" in full.content.decode()
    assert NotificationEndpoint.objects.count() == services.ENDPOINTS_PER_APP_MAX


def test_ops_rotates_a_secret_and_sees_the_new_one_once(client: Client, alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    old = endpoint.secret
    staff = as_role(client, OPS)
    response = _action(staff, ENDPOINTS, "rotate_secret", endpoint.pk)
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert endpoint.previous_secret_expires_at is not None and endpoint.previous_secret_expires_at > timezone.now()
    assert any(endpoint.secret in str(m) for m in response.context["messages"])
    page = staff.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page and old not in page and "previous secret also signs until" in page
    assert AuditLog.objects.filter(action="notification_endpoint.rotate_secret").count() == 1


def test_ops_disables_and_enables_endpoints(client: Client, alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    staff = as_role(client, OPS)
    _action(staff, ENDPOINTS, "disable_selected", endpoint.pk)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "Disabled by admin:ops-tester."
    NotificationEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now())
    _action(staff, ENDPOINTS, "enable_selected", endpoint.pk)
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason, endpoint.failing_since) == (
        True,
        None,
        "",
        None,
    )


def test_a_disabled_endpoint_is_red_in_the_list_and_on_its_apps_page(client: Client, alice: Tenant) -> None:
    ok = _endpoint(alice, f"{HOOK}/ok")
    broken = _endpoint(alice, f"{HOOK}/broken")
    now = timezone.now()
    NotificationEndpoint.objects.filter(pk=broken.pk).update(
        enabled=False,
        failing_since=now - dt.timedelta(days=1),
        disabled_at=now,
        disabled_reason="Every delivery failed for 24 hours.",
    )
    staff = as_role(client, OPS)
    for page in (ENDPOINTS, f"/admin/projects/app/{alice.app.pk}/change/"):
        html = staff.get(page).content.decode()
        assert f"{HOOK}/ok" in html and f"{HOOK}/broken" in html, page
        assert html.count('color: #ba2121; font-weight: bold">Disabled</span>') == 1, page
        assert "Every delivery failed for 24 hours." in html, page
    assert ok.enabled


def test_support_sees_endpoints_without_secrets_and_cannot_change_them(client: Client, alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    services.endpoint_secret_rotate(endpoint=endpoint, actor="test")
    secrets = _secrets_of(endpoint)
    staff = as_role(client, SUPPORT)
    for page in (ENDPOINTS, f"{ENDPOINTS}{endpoint.pk}/change/"):
        response = staff.get(page)
        assert response.status_code == 200, page
        assert not [s for s in secrets if s in response.content.decode()], page
    assert actions_offered(staff, ENDPOINTS) == set()
    assert staff.get(ENDPOINTS + "add/").status_code == 403
    _action(staff, ENDPOINTS, "rotate_secret", endpoint.pk)
    _action(staff, ENDPOINTS, "disable_selected", endpoint.pk)
    staff.post(f"{ENDPOINTS}{endpoint.pk}/change/", {"url": HOOK + "/evil", "enabled": "on"})
    assert _secrets_of(endpoint) == secrets
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.url == HOOK


def test_finance_sees_no_endpoints_notifications_or_deliveries(client: Client, alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    delivery = _failed_delivery(alice, endpoint)
    staff = as_role(client, FINANCE)
    for page in (ENDPOINTS, NOTIFICATIONS, DELIVERIES, f"{NOTIFICATIONS}{quote(delivery.notification_id)}/change/"):
        assert staff.get(page).status_code == 403, page
    response = staff.post(
        NOTIFICATIONS, {"action": "replay_selected", "_selected_action": [delivery.notification_id], "reason": "x"}
    )
    assert response.status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == "failed" and not AuditLog.objects.filter(action="notification.replay").exists()


def test_deleting_an_endpoint_in_the_admin_is_audited(client: Client, alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    staff = as_role(client, OPS)
    response = staff.post(f"{ENDPOINTS}{endpoint.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not NotificationEndpoint.objects.exists()
    assert AuditLog.objects.get(action="notification_endpoint.delete").actor == "admin:ops-tester"


# --- notifications and deliveries ---------------------------------------------------------------------


def test_ops_replays_a_notification_with_a_reason_and_it_is_audited(client: Client, alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    delivery = _failed_delivery(alice, endpoint)
    later = _endpoint(alice, f"{HOOK}/later")
    staff = as_role(client, OPS)
    assert "replay_selected" in actions_offered(staff, NOTIFICATIONS)
    asked = _action(staff, NOTIFICATIONS, "replay_selected", delivery.notification_id)
    assert "reason" in asked.content.decode().lower()
    delivery.refresh_from_db()
    assert delivery.status == "failed"  # nothing happens before the reason is given
    done = _action(staff, NOTIFICATIONS, "replay_selected", delivery.notification_id, reason="receiver fixed")
    assert "Replayed 1 notification(s): 2 deliveries queued (1 to endpoints that had none)." in done.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.failed_at) == ("pending", None)
    assert Delivery.objects.filter(notification_id=delivery.notification_id, endpoint=later).exists()
    entry = AuditLog.objects.get(action="notification.replay")
    assert (entry.actor, entry.reason, entry.project_id) == ("admin:ops-tester", "receiver fixed", alice.project.pk)


def test_ops_replays_a_delivery(client: Client, alice: Tenant) -> None:
    delivery = _failed_delivery(alice, _endpoint(alice))
    staff = as_role(client, OPS)
    _action(staff, DELIVERIES, "replay_selected", delivery.pk, reason="one more time")
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert AuditLog.objects.get(action="delivery.replay").reason == "one more time"


def test_support_reads_notifications_and_deliveries_but_cannot_replay(client: Client, alice: Tenant) -> None:
    delivery = _failed_delivery(alice, _endpoint(alice))
    staff = as_role(client, SUPPORT)
    assert actions_offered(staff, NOTIFICATIONS) == set() and actions_offered(staff, DELIVERIES) == set()
    _action(staff, NOTIFICATIONS, "replay_selected", delivery.notification_id, reason="x")
    _action(staff, DELIVERIES, "replay_selected", delivery.pk, reason="x")
    delivery.refresh_from_db()
    assert delivery.status == "failed" and not AuditLog.objects.filter(action__endswith=".replay").exists()


def test_a_notification_shows_its_deliveries_with_their_attempts(client: Client, alice: Tenant) -> None:
    delivery = _failed_delivery(alice, _endpoint(alice))
    staff = as_role(client, SUPPORT)
    page = staff.get(f"{NOTIFICATIONS}{quote(delivery.notification_id)}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "bad gateway here" in html and "502" in html and "87 ms" in html and HOOK in html
    assert 'name="_save"' not in html  # read-only
    listing = staff.get(NOTIFICATIONS, {"type": "entitlements.updated"}).content.decode()
    assert delivery.notification_id in listing and "1 failed" in listing
    detail = staff.get(f"{DELIVERIES}{delivery.pk}/change/").content.decode()
    assert "bad gateway here" in detail
    assert staff.get(DELIVERIES, {"status__exact": "failed"}).context["cl"].result_count == 1
    assert staff.get(DELIVERIES, {"status__exact": "pending"}).context["cl"].result_count == 0


def test_a_notification_whose_id_reads_like_an_admin_escape_opens_from_its_list(client: Client, alice: Tenant) -> None:
    # "_22" is the admin's escape for a double quote: a hand-built URL with this id finds nothing; the
    # list's own link (quoted) must find it.
    notification = Notification.objects.create(
        id="ntf_22" + "0" * 22, project=alice.project, type="entitlements.updated", user_id="u1", data={}
    )
    staff = as_role(client, SUPPORT)
    listing = staff.get(NOTIFICATIONS).content.decode()
    link = f"{NOTIFICATIONS}{quote(notification.pk)}/change/"
    assert link in listing
    page = staff.get(link)
    assert page.status_code == 200
    assert page.context["original"].pk == notification.pk
