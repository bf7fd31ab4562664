"""The grant/revoke contract (API.md): the grant honours Idempotency-Key like every creating POST, the
revoke is the grant's twin (it takes the grant's body, and the calling app is the actor when none is
named), and a grant that would already be over is a 400 that says so."""

from __future__ import annotations

from typing import Any

import pytest

from apps.common.models import AuditLog
from apps.entitlements.models import Grant
from tests.conftest import Tenant, committed

pytestmark = pytest.mark.django_db


def grant_body(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    return {
        "user_id": "user_42",
        "project_id": tenant.project.pk,
        "feature_code": "labs",
        "granted_by": "support@spacehq",
        "reason": "VIP pilot",
        "valid_to": "2099-01-01T00:00:00Z",
    } | changes


def _active(tenant: Tenant) -> bool:
    url = f"/api/v1/entitlements/check?user_id=user_42&project_id={tenant.project.pk}&feature_code=labs"
    return bool(tenant.client().get(url).json()["active"])


# --- Idempotency-Key on the grant ------------------------------------------------------------------


def test_the_same_key_and_body_replay_the_first_201_and_create_one_grant(labs: Tenant) -> None:
    api = labs.client()
    first = api.post("/api/v1/admin/grant", grant_body(labs), format="json", HTTP_IDEMPOTENCY_KEY="grant-1")
    second = api.post("/api/v1/admin/grant", grant_body(labs), format="json", HTTP_IDEMPOTENCY_KEY="grant-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.json()["grant_id"] == first.json()["grant_id"]
    assert second["Idempotent-Replayed"] == "true"
    assert Grant.objects.count() == 1
    assert AuditLog.objects.filter(action="grant.create").count() == 1


def test_the_same_key_with_another_body_is_409_and_grants_nothing_more(labs: Tenant) -> None:
    api = labs.client()
    api.post("/api/v1/admin/grant", grant_body(labs), format="json", HTTP_IDEMPOTENCY_KEY="grant-1")
    other = api.post(
        "/api/v1/admin/grant", grant_body(labs, user_id="user_43"), format="json", HTTP_IDEMPOTENCY_KEY="grant-1"
    )
    assert other.status_code == 409
    assert other.json() == {"detail": "This Idempotency-Key was already used with a different request."}
    assert list(Grant.objects.values_list("user_id", flat=True)) == ["user_42"]


def test_without_a_key_each_grant_is_its_own(labs: Tenant) -> None:
    api = labs.client()
    assert api.post("/api/v1/admin/grant", grant_body(labs), format="json").status_code == 201
    assert api.post("/api/v1/admin/grant", grant_body(labs), format="json").status_code == 201
    assert Grant.objects.count() == 2


def test_a_key_that_is_not_printable_ascii_is_400(labs: Tenant) -> None:
    response = labs.client().post(
        "/api/v1/admin/grant", grant_body(labs), format="json", HTTP_IDEMPOTENCY_KEY="clé\x7f"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["Idempotency-Key"]


# --- valid_to already passed -----------------------------------------------------------------------


def test_a_grant_whose_valid_to_has_passed_is_400_saying_so(labs: Tenant) -> None:
    # The seed guide's example grant: valid_to 2026-01-01, already past.
    response = labs.client().post(
        "/api/v1/admin/grant", grant_body(labs, valid_to="2026-01-01T00:00:00Z"), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"valid_to": ["2026-01-01T00:00:00Z is already past: a grant must end in the future."]}
    assert not Grant.objects.exists()


def test_a_valid_to_before_valid_from_is_still_its_own_400(labs: Tenant) -> None:
    body = grant_body(labs, valid_from="2099-06-01T00:00:00Z", valid_to="2099-01-01T00:00:00Z")
    response = labs.client().post("/api/v1/admin/grant", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"valid_to": ["Must be after valid_from."]}


# --- the revoke, the grant's twin -------------------------------------------------------------------


def test_the_revoke_accepts_the_grants_own_body_and_records_granted_by_as_the_actor(labs: Tenant) -> None:
    api = labs.client()
    with committed():
        assert api.post("/api/v1/admin/grant", grant_body(labs), format="json").status_code == 201
    assert _active(labs)
    with committed():  # the cached answer is invalidated on commit
        response = api.post("/api/v1/admin/revoke", grant_body(labs, reason="pilot over"), format="json")
    assert response.status_code == 200
    assert response.json() == {"revoked": 1}
    assert not _active(labs)
    audit = AuditLog.objects.get(action="grant.revoke")
    assert (audit.actor, audit.reason) == ("support@spacehq", "pilot over")
    assert Grant.objects.get().revoked_by == "support@spacehq"


def test_revoked_by_wins_over_granted_by(labs: Tenant) -> None:
    api = labs.client()
    api.post("/api/v1/admin/grant", grant_body(labs), format="json")
    body = grant_body(labs, revoked_by="lead@spacehq", valid_from="2026-01-01T00:00:00Z")
    assert api.post("/api/v1/admin/revoke", body, format="json").json() == {"revoked": 1}
    assert AuditLog.objects.get(action="grant.revoke").actor == "lead@spacehq"


def test_without_granted_by_or_revoked_by_the_calling_app_is_the_actor(labs: Tenant) -> None:
    api = labs.client()
    api.post("/api/v1/admin/grant", grant_body(labs), format="json")
    body = {"user_id": "user_42", "project_id": labs.project.pk, "feature_code": "labs", "reason": "done"}
    assert api.post("/api/v1/admin/revoke", body, format="json").json() == {"revoked": 1}
    assert AuditLog.objects.get(action="grant.revoke").actor == f"app:{labs.app.name}"
    assert Grant.objects.get().revoked_by == f"app:{labs.app.name}"


def test_a_revoke_with_nothing_to_end_is_200_with_zero(labs: Tenant) -> None:
    body = {"user_id": "nobody", "project_id": labs.project.pk, "feature_code": "labs", "reason": "cleanup"}
    response = labs.client().post("/api/v1/admin/revoke", body, format="json")
    assert response.status_code == 200
    assert response.json() == {"revoked": 0}


def test_the_revoke_refuses_what_the_grant_refuses(labs: Tenant, bob: Tenant) -> None:
    api = labs.client()
    assert api.post("/api/v1/admin/revoke", grant_body(labs, reason=0), format="json").status_code == 400
    assert api.post("/api/v1/admin/revoke", grant_body(labs, valid_to="soon"), format="json").status_code == 400
    response = api.post("/api/v1/admin/revoke", grant_body(labs, project_id=bob.project.pk), format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Project ID does not match"}
