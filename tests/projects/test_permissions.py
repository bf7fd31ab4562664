"""Project scoping (403/404) on the real endpoints, and scopes on a view that declares them."""

from __future__ import annotations

import pytest
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from apps.projects.permissions import CLIENT_PERMISSIONS
from tests.conftest import Tenant, make_tenant

pytestmark = pytest.mark.django_db


class OpsOnlyView(APIView):
    """Stands for any endpoint that names its scopes; the permission classes are the real ones."""

    permission_classes = CLIENT_PERMISSIONS
    required_scopes: tuple[str, ...] = ("ops",)

    def get(self, request: Request) -> Response:
        return Response({"ok": True})

    def post(self, request: Request) -> Response:
        return Response({"ok": True})


class CatalogAndOpsView(OpsOnlyView):
    required_scopes = ("catalog:write", "ops")


urlpatterns = [
    path("api/v1/", include("apps.projects.urls")),
    path("api/v1/test/ops", OpsOnlyView.as_view()),
    path("api/v1/test/catalog-ops", CatalogAndOpsView.as_view()),
]


def test_another_projects_id_in_the_path_is_403(alice: Tenant, bob: Tenant) -> None:
    response = alice.client().get(f"/api/v1/projects/{bob.project.pk}")
    assert response.status_code == 403
    assert response.json() == {"detail": "Project ID does not match"}


def test_own_project_in_the_path_is_answered(alice: Tenant) -> None:
    response = alice.client().get(f"/api/v1/projects/{alice.project.pk}")
    assert response.status_code == 200
    assert response.json()["allowed_redirect_prefixes"] == ["https://alpha.example/"]


def test_another_projects_app_is_404_as_if_it_did_not_exist(alice: Tenant, bob: Tenant) -> None:
    assert alice.client().get(f"/api/v1/apps/{bob.app.pk}").status_code == 404
    assert alice.client().get("/api/v1/apps/999999").status_code == 404
    assert alice.client().get(f"/api/v1/apps/{alice.app.pk}").json()["name"] == "app"


@pytest.mark.urls(__name__)
def test_another_projects_id_in_the_query_is_403(alice: Tenant, bob: Tenant) -> None:
    response = alice.client().get(f"/api/v1/test/ops?project_id={bob.project.pk}")
    assert response.status_code == 403
    assert response.json() == {"detail": "Project ID does not match"}
    assert alice.client().get(f"/api/v1/test/ops?project_id={alice.project.pk}").status_code == 200


@pytest.mark.urls(__name__)
def test_another_projects_id_in_the_body_is_403(alice: Tenant, bob: Tenant) -> None:
    response = alice.client().post("/api/v1/test/ops", {"project_id": bob.project.pk}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Project ID does not match"}
    as_string = alice.client().post("/api/v1/test/ops", {"project_id": str(alice.project.pk)}, format="json")
    assert as_string.status_code == 200


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("bad", ["abc", "1.5", "", "-1x", "99999999999999999999999"])
def test_a_malformed_project_id_is_400_naming_the_field(alice: Tenant, bad: str) -> None:
    response = alice.client().get("/api/v1/test/ops", {"project_id": bad})
    assert response.status_code == 400
    assert response.json() == {"project_id": ["A valid integer is required."]}


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("bad", [True, None, [1], {"id": 1}, 1.0])
def test_a_non_integer_project_id_in_json_is_400(alice: Tenant, bad: object) -> None:
    response = alice.client().post("/api/v1/test/ops", {"project_id": bad}, format="json")
    assert response.status_code == 400
    assert "project_id" in response.json()


@pytest.mark.urls(__name__)
def test_a_call_outside_the_keys_scopes_is_403_naming_the_missing_scope(db: None) -> None:
    reader = make_tenant("gamma", scopes=["entitlements:read"])
    response = reader.client().get("/api/v1/test/ops")
    assert response.status_code == 403
    assert response.json() == {"detail": "This API key lacks the scope(s): ops."}


@pytest.mark.urls(__name__)
def test_every_required_scope_is_needed(db: None) -> None:
    partial = make_tenant("delta", scopes=["ops"])
    response = partial.client().get("/api/v1/test/catalog-ops")
    assert response.status_code == 403
    assert response.json() == {"detail": "This API key lacks the scope(s): catalog:write."}
    full = make_tenant("echo", scopes=["ops", "catalog:write"])
    assert full.client().get("/api/v1/test/catalog-ops").status_code == 200


@pytest.mark.urls(__name__)
def test_scope_and_project_checks_come_after_authentication(db: None) -> None:
    response = APIClient().get("/api/v1/test/ops?project_id=1")
    assert response.status_code == 401
