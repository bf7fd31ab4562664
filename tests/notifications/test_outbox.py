"""The transactional outbox: a change of a user's entitlements writes its notification in its own
transaction, so that neither exists without the other, with a version that only grows.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from apps.entitlements.grants import grant_create, grants_revoke
from apps.entitlements.models import Grant
from apps.entitlements.notifications import services
from apps.entitlements.notifications.models import Delivery, EntitlementVersion, Notification, NotificationEndpoint
from apps.entitlements.notifications.outbox import ENTITLEMENTS_UPDATED
from apps.projects.services import app_create
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def _endpoint(tenant: Tenant, url: str = "https://alpha.example/hook", **fields: Any) -> NotificationEndpoint:
    return services.endpoint_create(app=tenant.app, url=url, actor="test", **fields)


def _grant(tenant: Tenant, user_id: str = "u1") -> Grant:
    return grant_create(
        project=tenant.project, user_id=user_id, feature_code="labs", granted_by="support", reason="pilot"
    )


def _version(tenant: Tenant, user_id: str = "u1") -> int | None:
    row = EntitlementVersion.objects.filter(project=tenant.project, user_id=user_id).first()
    return None if row is None else row.version


def test_a_change_that_rolls_back_leaves_no_notification(labs: Tenant) -> None:
    _endpoint(labs)
    written_inside: list[int] = []

    def grant_then_fail() -> None:
        with transaction.atomic():
            _grant(labs)
            written_inside.append(Notification.objects.count())
            raise Boom

    with pytest.raises(Boom):
        grant_then_fail()
    assert written_inside == [1]  # written inside the transaction...
    # ... and gone with it, as the grant and the version are.
    assert not Grant.objects.exists()
    assert not Notification.objects.exists() and not Delivery.objects.exists()
    assert _version(labs) is None


def test_a_committed_change_writes_one_notification_per_change_with_growing_versions(
    labs: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = _endpoint(labs)
    with django_capture_on_commit_callbacks() as first_commit:
        _grant(labs)
    [granted] = Notification.objects.all()
    assert (granted.project_id, granted.type, granted.user_id) == (labs.project.pk, ENTITLEMENTS_UPDATED, "u1")
    assert granted.data["user_id"] == "u1" and granted.data["version"] == 1
    [entitlement] = granted.data["entitlements"]
    assert (entitlement["feature_code"], entitlement["active"], entitlement["source"]) == ("labs", True, "grant")
    assert entitlement["valid_to"] is None and entitlement["valid_from"].endswith("Z")
    envelope = granted.envelope()
    assert set(envelope) == {"id", "type", "created", "project_id", "data"} and str(envelope["id"]).startswith("ntf_")
    delivery = Delivery.objects.get(notification=granted)
    assert (delivery.endpoint_id, delivery.status, delivery.attempts) == (endpoint.pk, "pending", 0)
    assert len(first_commit) >= 1  # the worker is woken when the change commits

    grants_revoke(project=labs.project, user_id="u1", feature_code="labs", revoked_by="support", reason="ended")
    revoked = Notification.objects.exclude(pk=granted.pk).get()
    assert revoked.data["version"] == 2 and _version(labs) == 2
    # The revoked grant's window ends now: kept in the set, no longer active.
    [ended] = revoked.data["entitlements"]
    assert (ended["feature_code"], ended["active"], ended["valid_to"] is not None) == ("labs", False, True)
    assert Delivery.objects.filter(notification=revoked, endpoint=endpoint).count() == 1


def test_without_endpoints_no_rows_are_written_but_versions_still_grow(labs: Tenant) -> None:
    _grant(labs)
    grants_revoke(project=labs.project, user_id="u1", feature_code="labs", revoked_by="support", reason="ended")
    assert not Notification.objects.exists() and not Delivery.objects.exists()
    assert _version(labs) == 2
    # An endpoint registered later sees the versions carry on from there.
    _endpoint(labs)
    _grant(labs)
    assert Notification.objects.get().data["version"] == 3


def test_endpoints_of_active_apps_that_want_the_type_get_a_delivery_disabled_ones_held(
    labs: Tenant, bob: Tenant
) -> None:
    wanted = _endpoint(labs)
    typed = _endpoint(labs, url="https://alpha.example/typed", event_types=[ENTITLEMENTS_UPDATED])
    NotificationEndpoint.objects.create(
        app=labs.app, url="https://alpha.example/invoices", event_types=["invoice.paid"]
    )
    paused = _endpoint(labs, url="https://alpha.example/off", enabled=False)
    retired, _ = app_create(project=labs.project, name="retired", scopes=[])
    services.endpoint_create(app=retired, url="https://alpha.example/retired", actor="test")
    retired.active = False
    retired.save(update_fields=["active"])
    services.endpoint_create(app=bob.app, url="https://bravo.example/hook", actor="test")

    _grant(labs)
    notification = Notification.objects.get()
    # The paused endpoint's delivery waits, pending, for it to be enabled again (not claimed meanwhile).
    assert set(Delivery.objects.filter(notification=notification).values_list("endpoint_id", flat=True)) == {
        wanted.pk,
        typed.pk,
        paused.pk,
    }


def test_one_notification_per_user_each_with_its_own_version(labs: Tenant) -> None:
    _endpoint(labs)
    _grant(labs, "u1")
    _grant(labs, "u1")  # a second grant of the same feature changes the projection again
    _grant(labs, "u2")
    versions = sorted(Notification.objects.values_list("user_id", "data__version"))
    assert versions == [("u1", 1), ("u1", 2), ("u2", 1)]
