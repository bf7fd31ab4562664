from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.common.models import AuditLog
from apps.entitlements.models import Grant, RevenueEntry
from apps.entitlements.services import revenue_payment_record, revenue_refund_record
from billing_service.cache_config import redis_cache
from tests.conftest import Tenant, committed
from tests.entitlements.conftest import NOW, apply, subscription_snapshot, ts
from tests.factories import SuperuserFactory

pytestmark = pytest.mark.django_db


def _check(tenant: Tenant, user: str = "u1", feature: str = "pro", project_id: int | None = None) -> dict[str, object]:
    pid = project_id or tenant.project.pk
    response = tenant.client().get(f"/api/v1/entitlements/check?user_id={user}&project_id={pid}&feature_code={feature}")
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_the_check_answers_active_with_valid_to(alice: Tenant, pro: str) -> None:
    with committed():
        apply(alice, subscription_snapshot(period_end=ts(NOW) + 10**8), ts(NOW), "evt_1")
    body = _check(alice)
    assert body["active"] is True
    assert body["feature_code"] == "pro"
    assert str(body["valid_to"]).endswith("Z")
    assert _check(alice, feature="labs")["active"] is False


def test_a_warm_check_touches_no_database(alice: Tenant, pro: str) -> None:
    with committed():
        apply(alice, subscription_snapshot(period_end=ts(NOW) + 10**8), ts(NOW), "evt_1")
    _check(alice)  # warms the key and the entitlement caches
    with CaptureQueriesContext(connection) as queries:
        assert _check(alice)["active"] is True
    assert [q["sql"] for q in queries.captured_queries] == []


def test_a_recompute_invalidates_the_cached_answer(alice: Tenant, pro: str) -> None:
    with committed():
        apply(alice, subscription_snapshot(period_end=ts(NOW) + 10**8), ts(NOW), "evt_1")
    assert _check(alice)["active"] is True
    with committed():
        apply(alice, subscription_snapshot(status="canceled", ended_at=ts(NOW)), ts(NOW) + 5, "evt_2")
    assert _check(alice)["active"] is False


def test_answers_stay_correct_and_never_deny_with_the_cache_down(alice: Tenant, pro: str, settings: object) -> None:
    with committed():
        apply(alice, subscription_snapshot(period_end=ts(NOW) + 10**8), ts(NOW), "evt_1")
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0", socket_timeout=0.05, key_prefix="t")}  # type: ignore[attr-defined]
    assert _check(alice)["active"] is True
    assert _check(alice, feature="labs")["active"] is False
    with committed():
        apply(alice, subscription_snapshot(status="canceled", ended_at=ts(NOW)), ts(NOW) + 5, "evt_2")
    assert _check(alice)["active"] is False


def test_the_list_answers_as_of_any_instant(alice: Tenant, pro: str) -> None:
    with committed():
        apply(alice, subscription_snapshot(start=ts(NOW), period_end=ts(NOW) + 86400), ts(NOW), "evt_1")
    api = alice.client()
    url = f"/api/v1/entitlements?user_id=u1&project_id={alice.project.pk}"
    inside = api.get(url + "&as_of=" + (NOW + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")).json()
    assert inside["entitlements"][0]["active"] is True
    assert inside["entitlements"][0]["source"] == "subscription"
    after = api.get(url + "&as_of=2030-01-01T00:00:00Z&feature_code=pro").json()
    assert after["entitlements"][0]["active"] is False
    assert api.get(url + "&as_of=yesterday").status_code == 400
    assert api.get(url + "&feature_code=labs").json() == {"entitlements": []}


def test_missing_parameters_are_400(alice: Tenant) -> None:
    response = alice.client().get(f"/api/v1/entitlements/check?project_id={alice.project.pk}&feature_code=pro")
    assert response.status_code == 400
    assert "user_id" in response.json()


def test_grant_and_revoke_through_the_api_are_audited(alice: Tenant, pro: str) -> None:
    api = alice.client()
    body = {
        "user_id": "u9",
        "project_id": alice.project.pk,
        "feature_code": "pro",
        "granted_by": "support@x",
        "reason": "VIP",
        "valid_to": "2099-01-01T00:00:00Z",
    }
    with committed():
        granted = api.post("/api/v1/admin/grant", body, format="json")
    assert granted.status_code == 201, granted.json()
    assert granted.json()["grant_id"] == Grant.objects.get().pk
    assert _check(alice, user="u9")["active"] is True
    revoke = {
        "user_id": "u9",
        "project_id": alice.project.pk,
        "feature_code": "pro",
        "revoked_by": "s",
        "reason": "done",
    }
    with committed():
        assert api.post("/api/v1/admin/revoke", revoke, format="json").json() == {"revoked": 1}
    assert _check(alice, user="u9")["active"] is False
    assert api.post("/api/v1/admin/revoke", revoke, format="json").json() == {"revoked": 0}
    actions = list(AuditLog.objects.order_by("occurred_at", "id").values_list("action", "actor", "reason"))
    assert actions == [("grant.create", "support@x", "VIP"), ("grant.revoke", "s", "done")]
    revoked = AuditLog.objects.get(action="grant.revoke")
    assert revoked.before is not None
    assert revoked.before["revoked_at"] is None
    assert revoked.after is not None
    assert revoked.after["revoked_at"] is not None


def test_an_unknown_feature_code_in_a_grant_is_400(alice: Tenant, pro: str) -> None:
    body = {"user_id": "u9", "project_id": alice.project.pk, "feature_code": "nope", "granted_by": "s", "reason": "r"}
    response = alice.client().post("/api/v1/admin/grant", body, format="json")
    assert response.status_code == 400
    assert "feature_code" in response.json()
    assert not Grant.objects.exists()
    assert not AuditLog.objects.exists()


def test_a_code_declared_on_the_project_can_be_granted(alice: Tenant) -> None:
    alice.project.feature_codes = ["labs"]
    alice.project.save()
    body = {"user_id": "u9", "project_id": alice.project.pk, "feature_code": "labs", "granted_by": "s", "reason": "r"}
    assert alice.client().post("/api/v1/admin/grant", body, format="json").status_code == 201


def test_the_audit_log_is_append_only(alice: Tenant, pro: str) -> None:
    body = {"user_id": "u9", "project_id": alice.project.pk, "feature_code": "pro", "granted_by": "s", "reason": "r"}
    alice.client().post("/api/v1/admin/grant", body, format="json")
    entry = AuditLog.objects.get()
    entry.reason = "rewritten"
    with pytest.raises(RuntimeError, match="append-only"):
        entry.save()
    with pytest.raises(RuntimeError, match="append-only"):
        entry.delete()


def test_scopes_guard_reads_grants_and_metrics(alice: Tenant, pro: str) -> None:
    from apps.projects.services import api_key_create, app_create

    app, _ = app_create(project=alice.project, name="checker", scopes=["checkout:write"])
    _, raw = api_key_create(app=app)
    api = alice.client()
    api.credentials(HTTP_X_API_KEY=raw)
    pid = alice.project.pk
    assert api.get(f"/api/v1/entitlements/check?user_id=u&project_id={pid}&feature_code=pro").status_code == 403
    grant = {"user_id": "u", "project_id": pid, "feature_code": "pro", "granted_by": "s", "reason": "r"}
    assert api.post("/api/v1/admin/grant", grant, format="json").status_code == 403
    assert api.get(f"/api/v1/metrics/project/{pid}/revenue").status_code == 403


def test_revenue_is_gross_refunded_and_net_per_currency(alice: Tenant) -> None:
    revenue_payment_record(
        project=alice.project, payment_intent_id="pi_1", amount=149900, currency="usd", occurred_at=NOW
    )
    revenue_payment_record(
        project=alice.project, payment_intent_id="pi_1", amount=149900, currency="usd", occurred_at=NOW
    )
    revenue_payment_record(project=alice.project, payment_intent_id="pi_2", amount=500, currency="eur", occurred_at=NOW)
    revenue_refund_record(
        project=alice.project, charge_id="ch_1", amount_refunded_total=1000, currency="usd", occurred_at=NOW
    )
    revenue_refund_record(
        project=alice.project, charge_id="ch_1", amount_refunded_total=1499, currency="usd", occurred_at=NOW
    )
    revenue_refund_record(
        project=alice.project, charge_id="ch_1", amount_refunded_total=1499, currency="usd", occurred_at=NOW
    )
    assert RevenueEntry.objects.count() == 4
    body = alice.client().get(f"/api/v1/metrics/project/{alice.project.pk}/revenue").json()
    assert body == {
        "project_id": alice.project.pk,
        "revenue": [
            {"currency": "eur", "gross": 500, "refunded": 0, "net": 500},
            {"currency": "usd", "gross": 149900, "refunded": 1499, "net": 148401},
        ],
    }
    empty = alice.client().get(f"/api/v1/metrics/project/{alice.project.pk}/revenue?from=2030-01-01T00:00:00Z").json()
    assert empty["revenue"] == []


def test_subscription_metrics_count_by_status_and_price(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot("sub_a"), ts(NOW), "e1", user_id="a")
    apply(alice, subscription_snapshot("sub_b", status="trialing"), ts(NOW), "e2", user_id="b")
    apply(alice, subscription_snapshot("sub_c", status="canceled", ended_at=ts(NOW)), ts(NOW), "e3", user_id="c")
    body = alice.client().get(f"/api/v1/metrics/project/{alice.project.pk}/subscriptions").json()
    assert body["active_subscriptions"] == 2
    assert body["by_status"] == {"active": 1, "canceled": 1, "trialing": 1}
    assert body["by_price"] == {"price_pro": 2}


def test_another_projects_key_or_ids_leak_nothing(alice: Tenant, bob: Tenant, pro: str) -> None:
    with committed():
        apply(alice, subscription_snapshot(period_end=ts(NOW) + 10**8), ts(NOW), "evt_1")
    revenue_payment_record(project=alice.project, payment_intent_id="pi_1", amount=100, currency="usd", occurred_at=NOW)
    bobs = bob.client()
    pid = alice.project.pk
    assert bobs.get(f"/api/v1/entitlements/check?user_id=u1&project_id={pid}&feature_code=pro").status_code == 403
    assert bobs.get(f"/api/v1/entitlements?user_id=u1&project_id={pid}").status_code == 403
    assert bobs.get(f"/api/v1/metrics/project/{pid}/revenue").status_code == 403
    assert bobs.get(f"/api/v1/metrics/project/{pid}/subscriptions").status_code == 403
    # The same user id in bob's own project is another user.
    own = bobs.get(f"/api/v1/entitlements/check?user_id=u1&project_id={bob.project.pk}&feature_code=pro").json()
    assert own["active"] is False
    assert bobs.get(f"/api/v1/metrics/project/{bob.project.pk}/revenue").json()["revenue"] == []
    grant = {"user_id": "u1", "project_id": pid, "feature_code": "pro", "granted_by": "s", "reason": "r"}
    assert bobs.post("/api/v1/admin/grant", grant, format="json").status_code == 403


def test_support_grants_and_revokes_in_the_admin_with_a_reason(alice: Tenant, pro: str, client: Client) -> None:
    client.force_login(SuperuserFactory.create(username="support"))
    form = {
        "project": alice.project.pk,
        "user_id": "u5",
        "feature_code": "pro",
        "reason": "VIP",
        "valid_from_0": "2026-01-01",
        "valid_from_1": "00:00:00",
        "valid_to_0": "2099-01-01",
        "valid_to_1": "00:00:00",
    }
    with committed():
        assert client.post("/admin/entitlements/grant/add/", form).status_code == 302
    grant = Grant.objects.get(user_id="u5")
    assert grant.granted_by == "support"
    assert _check(alice, user="u5")["active"] is True
    bad = client.post("/admin/entitlements/grant/add/", {**form, "feature_code": "nope"})
    assert bad.status_code == 200
    assert "Unknown feature code" in bad.content.decode()
    no_reason = client.post(
        "/admin/entitlements/grant/", {"action": "revoke", "_selected_action": [grant.pk], "reason": ""}, follow=True
    )
    assert "Give a reason" in no_reason.content.decode()
    with committed():
        client.post(
            "/admin/entitlements/grant/", {"action": "revoke", "_selected_action": [grant.pk], "reason": "abuse"}
        )
    assert _check(alice, user="u5")["active"] is False
    assert AuditLog.objects.filter(action="grant.revoke", actor="support", reason="abuse").count() == 1
    assert (
        client.get(f"/admin/entitlements/grant/?project__id__exact={alice.project.pk}&feature_code=pro").status_code
        == 200
    )
    assert client.get("/admin/common/auditlog/").status_code == 200
