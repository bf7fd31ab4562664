"""Replays (POST /api/v1/fulfillment/replays, scope ops): by ids or by time range, the key's project only.

A replay resets the notifications' deliveries to pending now and gives endpoints subscribed since a
delivery of their own; the worker is woken after commit. A dry run counts and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.common.models import AuditLog
from apps.entitlements.notifications import services
from apps.entitlements.notifications.models import Delivery, Notification, NotificationEndpoint
from apps.entitlements.notifications.outbox import ENTITLEMENTS_UPDATED, Message, notifications_write
from apps.projects.services import app_create
from tests.conftest import Tenant, make_tenant

pytestmark = pytest.mark.django_db

REPLAYS = "/api/v1/fulfillment/replays"


def _endpoint(tenant: Tenant, url: str = "https://alpha.example/hook", **fields: Any) -> NotificationEndpoint:
    return services.endpoint_create(app=tenant.app, url=url, actor="test", **fields)


def _notify(tenant: Tenant, user_id: str = "u1", *, days_ago: float = 0) -> Notification:
    """One `entitlements.updated` written through the outbox (a delivery per subscribed endpoint)."""
    [notification] = notifications_write(
        project=tenant.project,
        notification_type=ENTITLEMENTS_UPDATED,
        messages=[Message(user_id=user_id, data={"user_id": user_id, "version": 1, "entitlements": []})],
    )
    if days_ago:
        created = timezone.now() - dt.timedelta(days=days_ago)
        Notification.objects.filter(pk=notification.pk).update(created_at=created)
        notification.refresh_from_db()
    return notification


def _fail(delivery: Delivery) -> None:
    """As the worker leaves a delivery whose retries ran out."""
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempts=12, failed_at=now, next_attempt_at=now + dt.timedelta(days=9), last_status_code=500
    )


def _replay(tenant: Tenant, body: dict[str, Any]) -> Any:
    return tenant.client().post(REPLAYS, body, format="json")


def test_a_replay_by_id_resets_the_deliveries_to_pending_now(
    alice: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = _endpoint(alice)
    notification = _notify(alice)
    delivery = Delivery.objects.get(notification=notification, endpoint=endpoint)
    _fail(delivery)
    before = timezone.now()
    with django_capture_on_commit_callbacks() as wakeups:
        response = _replay(alice, {"notification_ids": [notification.pk], "reason": "receiver fixed"})
    assert response.status_code == 202, response.content
    assert response.json() == {"notifications": 1, "deliveries": 1, "dry_run": False}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.failed_at) == ("pending", None)
    assert before <= delivery.next_attempt_at <= timezone.now()
    assert delivery.attempts == 12  # the attempt log's numbering continues
    assert len(wakeups) == 1  # the worker is woken once the reset is committed
    entry = AuditLog.objects.get(action="notification.replay")
    assert (entry.project_id, entry.reason, entry.target) == (
        alice.project.pk,
        "receiver fixed",
        f"notification {notification.pk}",
    )
    assert (entry.after or {})["deliveries"] == 1 and entry.actor.startswith("app:app (key ")


def test_a_replay_gives_endpoints_subscribed_since_their_own_delivery(alice: Tenant) -> None:
    first = _endpoint(alice)
    notification = _notify(alice)
    later = _endpoint(alice, url="https://alpha.example/later")
    # Not subscribed: another type only, disabled, or of an inactive app.
    NotificationEndpoint.objects.create(
        app=alice.app, url="https://alpha.example/invoices", event_types=["invoice.paid"]
    )
    _endpoint(alice, url="https://alpha.example/off", enabled=False)
    inactive, _ = app_create(project=alice.project, name="retired", scopes=[])
    services.endpoint_create(app=inactive, url="https://alpha.example/retired", actor="test")
    inactive.active = False
    inactive.save(update_fields=["active"])

    response = _replay(alice, {"notification_ids": [notification.pk]})
    assert response.json() == {"notifications": 1, "deliveries": 2, "dry_run": False}
    assert set(Delivery.objects.filter(notification=notification).values_list("endpoint_id", "status")) == {
        (first.pk, "pending"),
        (later.pk, "pending"),
    }
    assert (AuditLog.objects.get(action="notification.replay").after or {})["created"] == 1


def test_a_replay_by_time_range_and_types(alice: Tenant) -> None:
    _endpoint(alice)
    old = _notify(alice, "old", days_ago=40)
    recent = [_notify(alice, "a", days_ago=10), _notify(alice, "b", days_ago=1)]
    for notification in (old, *recent):
        _fail(Delivery.objects.get(notification=notification))
    now = timezone.now()
    response = _replay(
        alice,
        {
            "since": (now - dt.timedelta(days=15)).isoformat(),
            "until": now.isoformat(),
            "types": [ENTITLEMENTS_UPDATED],
        },
    )
    assert response.json() == {"notifications": 2, "deliveries": 2, "dry_run": False}
    statuses = dict(Delivery.objects.values_list("notification_id", "status"))
    assert statuses == {old.pk: "failed", recent[0].pk: "pending", recent[1].pk: "pending"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "non_field_errors"),
        ({"notification_ids": []}, "notification_ids"),
        ({"notification_ids": ["evt_123"]}, "notification_ids"),
        ({"notification_ids": ["ntf_0123456789abcdef01234567"], "since": "2026-11-01T00:00:00Z"}, "non_field_errors"),
        ({"since": "2026-11-01T00:00:00Z"}, "until"),
        ({"until": "2026-11-01T00:00:00Z"}, "since"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
        ({"since": "2026-10-01T00:00:00Z", "until": "2026-11-01T00:00:01Z"}, "until"),
        ({"since": "yesterday", "until": "2026-11-01T00:00:00Z"}, "since"),
        ({"since": "2026-10-01T00:00:00Z", "until": "2026-10-02T00:00:00Z", "types": ["nope"]}, "types"),
        ({"notification_ids": ["ntf_0123456789abcdef01234567"], "dry_run": "yes"}, "dry_run"),
        ({"notification_ids": ["ntf_0123456789abcdef01234567"], "endpoint_id": 0}, "endpoint_id"),
    ],
)
def test_a_bad_selection_is_a_400_naming_it(alice: Tenant, body: dict[str, Any], field: str) -> None:
    delivery = Delivery.objects.get(notification=_notify(alice)) if _endpoint(alice) else None
    assert delivery is not None
    _fail(delivery)
    response = _replay(alice, body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    delivery.refresh_from_db()
    assert delivery.status == "failed" and not AuditLog.objects.filter(action="notification.replay").exists()


def test_thirty_one_days_is_the_widest_window(alice: Tenant) -> None:
    body = {"since": "2026-10-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}
    assert _replay(alice, body).status_code == 202


def test_another_projects_notifications_are_ignored(alice: Tenant, bob: Tenant) -> None:
    _endpoint(alice)
    _endpoint(bob, url="https://bravo.example/hook")
    hers, his = _notify(alice), _notify(bob)
    for notification in (hers, his):
        _fail(Delivery.objects.get(notification=notification))
    response = _replay(alice, {"notification_ids": [hers.pk, his.pk]})
    assert response.json() == {"notifications": 1, "deliveries": 1, "dry_run": False}
    assert Delivery.objects.get(notification=his).status == "failed"
    assert Delivery.objects.get(notification=hers).status == "pending"
    now = timezone.now()
    window = {"since": (now - dt.timedelta(days=1)).isoformat(), "until": (now + dt.timedelta(minutes=1)).isoformat()}
    assert _replay(bob, window).json()["notifications"] == 1


def test_the_ops_scope_is_required(alice: Tenant) -> None:
    _endpoint(alice)
    notification = _notify(alice)
    _fail(Delivery.objects.get(notification=notification))
    reader = make_tenant("reader", scopes=["entitlements:read", "admin:write"])
    other_app, key = app_create(project=alice.project, name="no-ops", scopes=["entitlements:read"])
    for tenant in (reader, Tenant(alice.project, other_app, key)):
        response = _replay(tenant, {"notification_ids": [notification.pk]})
        assert response.status_code == 403
        assert response.json() == {"detail": "This API key lacks the scope(s): ops."}
    assert Delivery.objects.get(notification=notification).status == "failed"
    assert APIClient().post(REPLAYS, {}, format="json", HTTP_X_API_KEY="bk_nope_nope").status_code == 401


def test_a_dry_run_counts_and_changes_nothing(alice: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    _endpoint(alice)
    notification = _notify(alice)
    _endpoint(alice, url="https://alpha.example/later")
    delivery = Delivery.objects.get(notification=notification)
    _fail(delivery)
    with django_capture_on_commit_callbacks() as wakeups:
        response = _replay(alice, {"notification_ids": [notification.pk], "dry_run": True})
    assert response.status_code == 202
    assert response.json() == {"notifications": 1, "deliveries": 2, "dry_run": True}
    delivery.refresh_from_db()
    assert delivery.status == "failed" and Delivery.objects.count() == 1
    assert wakeups == [] and not AuditLog.objects.filter(action="notification.replay").exists()


def test_endpoint_id_sends_to_that_endpoint_only_and_must_be_the_projects(alice: Tenant, bob: Tenant) -> None:
    first = _endpoint(alice)
    second = _endpoint(alice, url="https://alpha.example/second")
    notification = _notify(alice)
    for delivery in Delivery.objects.filter(notification=notification):
        _fail(delivery)
    third = _endpoint(alice, url="https://alpha.example/third")
    response = _replay(alice, {"notification_ids": [notification.pk], "endpoint_id": second.pk})
    assert response.json() == {"notifications": 1, "deliveries": 1, "dry_run": False}
    statuses = dict(Delivery.objects.values_list("endpoint_id", "status"))
    assert statuses == {first.pk: "failed", second.pk: "pending"} and third.pk not in statuses

    his = _endpoint(bob, url="https://bravo.example/hook")
    refused = _replay(alice, {"notification_ids": [notification.pk], "endpoint_id": his.pk})
    assert refused.status_code == 400
    assert refused.json() == {"endpoint_id": ["No such endpoint in your project."]}


def test_a_replay_wider_than_the_cap_is_refused(alice: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "REPLAY_NOTIFICATIONS_MAX", 2)
    _endpoint(alice)
    for user in ("a", "b", "c"):
        _fail(Delivery.objects.get(notification=_notify(alice, user)))
    now = timezone.now()
    response = _replay(
        alice, {"since": (now - dt.timedelta(hours=1)).isoformat(), "until": (now + dt.timedelta(hours=1)).isoformat()}
    )
    assert response.status_code == 400
    assert "narrow the window" in response.json()["detail"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"failed"}
