"""The notification endpoints API: an app manages its own endpoints with any of its keys.

Create answers the signing secret once (201), and so does a rotation; no read ever shows it. Another
app of the same project is a 403, another project's app (or none) a 404. Every refusal writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.common.models import AuditLog
from apps.entitlements.notifications import services
from apps.entitlements.notifications.models import (
    Delivery,
    DeliveryAttempt,
    Notification,
    NotificationEndpoint,
)
from apps.entitlements.notifications.signing import signature_header, signature_verify, signing_secrets
from apps.projects.services import app_create
from tests.conftest import Tenant, make_tenant

pytestmark = pytest.mark.django_db

HOOK = "https://alpha.example/hooks/billing"
ITEM_FIELDS = {
    "id",
    "app_id",
    "url",
    "event_types",
    "enabled",
    "failing_since",
    "disabled_at",
    "disabled_reason",
    "created_at",
    "updated_at",
}


def _list_path(tenant: Tenant, app_id: int | None = None) -> str:
    return f"/api/v1/apps/{tenant.app.pk if app_id is None else app_id}/endpoints"


def _path(tenant: Tenant, endpoint_id: int, suffix: str = "", app_id: int | None = None) -> str:
    return f"{_list_path(tenant, app_id)}/{endpoint_id}{suffix}"


def _create(tenant: Tenant, **body: Any) -> Any:
    return tenant.client().post(_list_path(tenant), {"url": HOOK} | body, format="json")


def _endpoint(tenant: Tenant, url: str = HOOK, **fields: Any) -> NotificationEndpoint:
    return services.endpoint_create(app=tenant.app, url=url, actor="test", **fields)


# --- create ----------------------------------------------------------------------------------------


def test_create_answers_the_secret_once_and_no_read_shows_it(alice: Tenant) -> None:
    response = _create(alice, event_types=["entitlements.updated"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == ITEM_FIELDS | {"secret", "previous_secret_expires_at"}
    endpoint = NotificationEndpoint.objects.get(pk=body["id"])
    assert body["secret"] == endpoint.secret and body["secret"].startswith("whsec_")
    assert body["previous_secret_expires_at"] is None
    assert body | {"created_at": None, "updated_at": None} == {
        "id": endpoint.pk,
        "app_id": alice.app.pk,
        "url": HOOK,
        "event_types": ["entitlements.updated"],
        "enabled": True,
        "failing_since": None,
        "disabled_at": None,
        "disabled_reason": "",
        "created_at": None,
        "updated_at": None,
        "secret": endpoint.secret,
        "previous_secret_expires_at": None,
    }

    api = alice.client()
    detail = api.get(_path(alice, endpoint.pk))
    listing = api.get(_list_path(alice))
    assert set(detail.json()) == ITEM_FIELDS
    assert [set(item) for item in listing.json()["results"]] == [ITEM_FIELDS]
    for page in (detail, listing):
        assert endpoint.secret not in page.content.decode()
    entry = AuditLog.objects.get(action="notification_endpoint.create")
    assert entry.project_id == alice.project.pk and entry.target == f"notification endpoint #{endpoint.pk}"
    assert endpoint.secret not in json.dumps([entry.before, entry.after])


def test_create_defaults_to_every_type_and_enabled(alice: Tenant) -> None:
    body = _create(alice).json()
    assert (body["event_types"], body["enabled"]) == ([], True)
    assert NotificationEndpoint.objects.get(pk=body["id"]).wants("anything.else")


def test_create_may_start_disabled_and_repeated_types_are_kept_once(alice: Tenant) -> None:
    body = _create(alice, enabled=False, event_types=["entitlements.updated", "entitlements.updated"]).json()
    assert (body["event_types"], body["enabled"]) == (["entitlements.updated"], False)


def test_any_key_of_the_app_manages_its_endpoints_without_a_scope(db: None) -> None:
    tenant = make_tenant("noscope", scopes=[])
    assert _create(tenant).status_code == 201
    assert tenant.client().get(_list_path(tenant)).status_code == 200


def test_an_idempotency_key_replays_the_first_answer_secret_included(alice: Tenant) -> None:
    api = alice.client()
    first = api.post(_list_path(alice), {"url": HOOK}, format="json", HTTP_IDEMPOTENCY_KEY="endpoint-1")
    again = api.post(_list_path(alice), {"url": HOOK}, format="json", HTTP_IDEMPOTENCY_KEY="endpoint-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other = api.post(_list_path(alice), {"url": HOOK + "/2"}, format="json", HTTP_IDEMPOTENCY_KEY="endpoint-1")
    assert other.status_code == 409
    assert NotificationEndpoint.objects.filter(app=alice.app).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": None}, "url"),
        ({"url": ""}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://alpha.example/hook"}, "url"),
        ({"url": "https://user:pw@alpha.example/hook"}, "url"),
        ({"url": "https://alpha.example/" + "x" * 2000}, "url"),
        ({"url": 7}, "url"),
        ({"event_types": ["invoice.nope"]}, "event_types"),
        ({"event_types": "entitlements.updated"}, "event_types"),
        ({"event_types": [1]}, "event_types"),
        ({"enabled": "yes"}, "enabled"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field_and_writes_nothing(
    alice: Tenant, body: dict[str, Any], field: str
) -> None:
    response = alice.client().post(_list_path(alice), {"url": HOOK} | body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not NotificationEndpoint.objects.exists() and not AuditLog.objects.exists()


def test_plain_http_only_where_allowed(alice: Tenant, settings: Any) -> None:
    settings.NOTIFICATION_ALLOW_HTTP = False
    refused = _create(alice, url="http://alpha.example/hook")
    assert refused.status_code == 400
    assert refused.json() == {"url": ["Must be an https URL: plain http is allowed only in development and tests."]}
    assert _create(alice).status_code == 201  # https still is
    settings.NOTIFICATION_ALLOW_HTTP = True
    assert _create(alice, url="http://127.0.0.1:8765/hook").status_code == 201


def test_an_app_has_at_most_ten_endpoints(alice: Tenant) -> None:
    for n in range(services.ENDPOINTS_PER_APP_MAX):
        assert _create(alice, url=f"{HOOK}/{n}").status_code == 201
    response = _create(alice, url=f"{HOOK}/11")
    assert response.status_code == 400
    assert response.json() == {"detail": services.TooManyEndpoints.default_detail}
    assert "at most 10" in response.json()["detail"]
    assert NotificationEndpoint.objects.filter(app=alice.app).count() == services.ENDPOINTS_PER_APP_MAX
    # Another app of the project has its own ten.
    other, key = app_create(project=alice.project, name="other", scopes=[])
    assert (
        Tenant(alice.project, other, key)
        .client()
        .post(f"/api/v1/apps/{other.pk}/endpoints", {"url": HOOK}, format="json")
        .status_code
        == 201
    )


# --- whose endpoints ---------------------------------------------------------------------------------


def _every_operation(tenant: Tenant, app_id: int, endpoint_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("get", _list_path(tenant, app_id), None),
        ("post", _list_path(tenant, app_id), {"url": HOOK + "/evil"}),
        ("get", _path(tenant, endpoint_id, app_id=app_id), None),
        ("patch", _path(tenant, endpoint_id, app_id=app_id), {"url": HOOK + "/evil"}),
        ("delete", _path(tenant, endpoint_id, app_id=app_id), None),
        ("post", _path(tenant, endpoint_id, "/rotate_secret", app_id=app_id), None),
        ("get", _path(tenant, endpoint_id, "/deliveries", app_id=app_id), None),
    ]


def _call(tenant: Tenant, method: str, path: str, body: dict[str, Any] | None) -> Any:
    api = tenant.client()
    return getattr(api, method)(path, body, format="json") if body is not None else getattr(api, method)(path)


def test_another_app_of_the_project_is_a_403_and_changes_nothing(alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    other_app, other_key = app_create(project=alice.project, name="other", scopes=["ops"])
    intruder = Tenant(alice.project, other_app, other_key)
    for method, path, body in _every_operation(intruder, alice.app.pk, endpoint.pk):
        response = _call(intruder, method, path, body)
        assert response.status_code == 403, (method, path, response.content)
        assert response.json() == {
            "detail": f"An API key manages only its own app's notification endpoints; this key belongs to app "
            f"{other_app.pk}."
        }
        assert endpoint.secret not in response.content.decode()
    stored = NotificationEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.url, stored.secret) == (HOOK, endpoint.secret)
    assert NotificationEndpoint.objects.count() == 1


def test_another_projects_app_or_an_unknown_one_is_a_404(alice: Tenant, bob: Tenant) -> None:
    endpoint = _endpoint(alice)
    for app_id in (alice.app.pk, 999_999):
        for method, path, body in _every_operation(bob, app_id, endpoint.pk):
            response = _call(bob, method, path, body)
            assert response.status_code == 404, (method, path, response.content)
    # Bob's own app path with Alice's endpoint id: no such endpoint of his app.
    for method, path, body in _every_operation(bob, bob.app.pk, endpoint.pk)[2:]:
        assert _call(bob, method, path, body).status_code == 404, (method, path)
    assert NotificationEndpoint.objects.get(pk=endpoint.pk).url == HOOK
    assert not NotificationEndpoint.objects.filter(app=bob.app).exists()


# --- list and read -------------------------------------------------------------------------------------


def test_the_list_pages_through_the_apps_endpoints_only(alice: Tenant) -> None:
    ids = [_endpoint(alice, f"{HOOK}/{n}").pk for n in range(3)]
    other, _ = app_create(project=alice.project, name="other", scopes=[])
    services.endpoint_create(app=other, url=HOOK, actor="test")
    api = alice.client()
    first = api.get(_list_path(alice), {"limit": "2"}).json()
    second = api.get(_list_path(alice), {"limit": "2", "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in first["results"] + second["results"]] == ids
    assert second["next_cursor"] is None


# --- change ----------------------------------------------------------------------------------------------


def test_patch_changes_only_what_is_sent_and_is_audited(alice: Tenant) -> None:
    endpoint = _endpoint(alice, event_types=["entitlements.updated"])
    response = alice.client().patch(_path(alice, endpoint.pk), {"url": HOOK + "/v2"}, format="json")
    assert response.status_code == 200, response.content
    assert set(response.json()) == ITEM_FIELDS
    stored = NotificationEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.url, stored.event_types, stored.enabled, stored.secret) == (
        HOOK + "/v2",
        ["entitlements.updated"],
        True,
        endpoint.secret,
    )
    entry = AuditLog.objects.get(action="notification_endpoint.update")
    assert (entry.before or {})["url"] == HOOK and (entry.after or {})["url"] == HOOK + "/v2"
    assert (
        alice.client().patch(_path(alice, endpoint.pk), {"event_types": []}, format="json").json()["event_types"] == []
    )


def test_patch_refuses_bad_values_and_changes_nothing(alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    for body in ({"url": "http//bad"}, {"event_types": ["nope"]}, {"enabled": None}, {"url": None}):
        response = alice.client().patch(_path(alice, endpoint.pk), body, format="json")
        assert response.status_code == 400, (body, response.content)
    stored = NotificationEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.url, stored.event_types, stored.enabled) == (HOOK, [], True)


def test_disabling_records_who_and_re_enabling_clears_the_disabled_state(
    alice: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = _endpoint(alice)
    off = alice.client().patch(_path(alice, endpoint.pk), {"enabled": False}, format="json").json()
    assert off["enabled"] is False and off["disabled_at"] is not None
    assert off["disabled_reason"] == f"Disabled by app:app (key {alice.key.split('_')[1]})."
    # The worker disabled it after a day of failures:
    now = timezone.now()
    NotificationEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=now - dt.timedelta(days=1), disabled_at=now, disabled_reason="Failing for 24 hours."
    )
    with django_capture_on_commit_callbacks() as wakeups:
        on = alice.client().patch(_path(alice, endpoint.pk), {"enabled": True}, format="json").json()
    assert (on["enabled"], on["disabled_at"], on["disabled_reason"], on["failing_since"]) == (True, None, "", None)
    assert len(wakeups) == 1  # the deliveries that waited are sent after commit
    stored = NotificationEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.enabled, stored.disabled_at, stored.failing_since) == (True, None, None)


# --- delete ----------------------------------------------------------------------------------------------


def test_delete_removes_the_endpoint_and_its_log_but_not_the_notifications(alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    notification = Notification.objects.create(project=alice.project, type="entitlements.updated", data={})
    Delivery.objects.create(notification=notification, endpoint=endpoint)
    response = alice.client().delete(_path(alice, endpoint.pk))
    assert response.status_code == 200
    assert response.json() == {"id": endpoint.pk, "deleted": True}
    assert not NotificationEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert not Delivery.objects.exists() and Notification.objects.filter(pk=notification.pk).exists()
    assert (AuditLog.objects.get(action="notification_endpoint.delete").before or {})["url"] == HOOK
    assert alice.client().get(_path(alice, endpoint.pk)).status_code == 404
    assert alice.client().delete(_path(alice, endpoint.pk)).status_code == 404


# --- rotate ----------------------------------------------------------------------------------------------


def _signed_by(endpoint: NotificationEndpoint, secret: str, *, at: dt.datetime) -> bool:
    body = b'{"id": "ntf_x"}'
    header = signature_header(body=body, secrets=signing_secrets(endpoint, now=at), timestamp=int(at.timestamp()))
    return signature_verify(body=body, header=header, secret=secret, now=at.timestamp())


def test_rotation_answers_the_new_secret_once_and_both_sign_during_the_overlap(alice: Tenant, settings: Any) -> None:
    settings.NOTIFICATION_SECRET_OVERLAP_SECONDS = 3600
    endpoint = _endpoint(alice)
    old = endpoint.secret
    before = timezone.now()
    response = alice.client().post(_path(alice, endpoint.pk, "/rotate_secret"))
    assert response.status_code == 201, response.content
    body = response.json()
    stored = NotificationEndpoint.objects.get(pk=endpoint.pk)
    assert body["secret"] == stored.secret != old and stored.secret.startswith("whsec_")
    # What the signer reads: the previous secret, and when it stops signing.
    assert stored.previous_secret == old
    assert stored.previous_secret_expires_at is not None
    expected = before + dt.timedelta(seconds=3600)
    assert abs((stored.previous_secret_expires_at - expected).total_seconds()) < 5
    assert body["previous_secret_expires_at"] == stored.previous_secret_expires_at.isoformat().replace("+00:00", "Z")
    within = stored.previous_secret_expires_at - dt.timedelta(seconds=1)
    assert _signed_by(stored, old, at=within) and _signed_by(stored, stored.secret, at=within)
    after = stored.previous_secret_expires_at + dt.timedelta(seconds=1)
    assert not _signed_by(stored, old, at=after) and _signed_by(stored, stored.secret, at=after)
    # Never shown again, and never audited.
    assert stored.secret not in alice.client().get(_path(alice, endpoint.pk)).content.decode()
    entry = AuditLog.objects.get(action="notification_endpoint.rotate_secret")
    assert old not in json.dumps(entry.after) and stored.secret not in json.dumps(entry.after)


def test_a_second_rotation_retires_the_oldest_secret_at_once(alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    first = endpoint.secret
    second = alice.client().post(_path(alice, endpoint.pk, "/rotate_secret")).json()["secret"]
    third = alice.client().post(_path(alice, endpoint.pk, "/rotate_secret")).json()["secret"]
    stored = NotificationEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.secret, stored.previous_secret) == (third, second)
    assert first not in signing_secrets(stored, now=timezone.now())


def test_no_overlap_means_the_old_secret_stops_at_once(alice: Tenant, settings: Any) -> None:
    settings.NOTIFICATION_SECRET_OVERLAP_SECONDS = 0
    endpoint = _endpoint(alice)
    body = alice.client().post(_path(alice, endpoint.pk, "/rotate_secret")).json()
    stored = NotificationEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.previous_secret, stored.previous_secret_expires_at, body["previous_secret_expires_at"]) == (
        "",
        None,
        None,
    )
    assert signing_secrets(stored, now=timezone.now()) == [body["secret"]]


# --- the delivery log ------------------------------------------------------------------------------------


def _delivery(endpoint: NotificationEndpoint, *, status: str, codes: list[int | None]) -> Delivery:
    notification = Notification.objects.create(
        project=endpoint.app.project, type="entitlements.updated", user_id="u1", data={"user_id": "u1"}
    )
    delivery = Delivery.objects.create(
        notification=notification, endpoint=endpoint, status=status, attempts=len(codes), last_status_code=codes[-1]
    )
    start = timezone.now() - dt.timedelta(minutes=len(codes))
    for number, code in enumerate(codes, start=1):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            attempted_at=start + dt.timedelta(minutes=number),
            status_code=code,
            duration_ms=10 * number,
            response_body=f"answer {number}" if code else "",
            error="" if code else "timed out after 5 s",
        )
    return delivery


def test_the_delivery_log_shows_each_delivery_with_its_attempts_newest_first(alice: Tenant) -> None:
    endpoint = _endpoint(alice)
    other = _endpoint(alice, url=HOOK + "/other")
    old = _delivery(endpoint, status="delivered", codes=[500, None, 200])
    new = _delivery(endpoint, status="pending", codes=[503])
    _delivery(other, status="failed", codes=[404])
    api = alice.client()
    body = api.get(_path(alice, endpoint.pk, "/deliveries")).json()
    assert [d["id"] for d in body["results"]] == [new.pk, old.pk] and body["next_cursor"] is None
    logged = body["results"][1]
    assert (logged["notification_id"], logged["type"], logged["user_id"], logged["status"]) == (
        old.notification_id,
        "entitlements.updated",
        "u1",
        "delivered",
    )
    assert [
        (a["number"], a["status_code"], a["duration_ms"], a["response_body"], a["error"]) for a in logged["attempt_log"]
    ] == [
        (1, 500, 10, "answer 1", ""),
        (2, None, 20, "", "timed out after 5 s"),
        (3, 200, 30, "answer 3", ""),
    ]
    pending = api.get(_path(alice, endpoint.pk, "/deliveries"), {"status": "pending"}).json()["results"]
    assert [d["id"] for d in pending] == [new.pk]
    bad = api.get(_path(alice, endpoint.pk, "/deliveries"), {"status": "lost"})
    assert bad.status_code == 400 and "status" in bad.json()


def test_the_delivery_log_reads_in_a_fixed_number_of_queries(alice: Tenant, django_assert_max_num_queries: Any) -> None:
    endpoint = _endpoint(alice)
    for _ in range(5):
        _delivery(endpoint, status="delivered", codes=[500, 200])
    api = alice.client()
    api.get(_list_path(alice))  # warms the key's cache
    with django_assert_max_num_queries(8):
        assert len(api.get(_path(alice, endpoint.pk, "/deliveries")).json()["results"]) == 5


def test_timestamps_are_utc_instants(alice: Tenant) -> None:
    body = _create(alice).json()
    created = dt.datetime.fromisoformat(body["created_at"])
    assert body["created_at"].endswith("Z") and abs(created.timestamp() - time.time()) < 60


def test_a_missing_key_is_a_401_and_a_form_body_a_415(alice: Tenant) -> None:
    anonymous = APIClient()
    assert anonymous.get(_list_path(alice)).status_code == 401
    assert anonymous.post(_list_path(alice), {"url": HOOK}, format="json").status_code == 401
    form = alice.client().post(_list_path(alice), f"url={HOOK}", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415
    assert not NotificationEndpoint.objects.exists()
