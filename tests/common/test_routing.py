"""One path, one view per operation (apps/common/routing.py): `GET /products` lists and
`POST /products` creates, and the path answers as one view serving both would."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.views import APIView

from apps.catalog.api_products import ProductCreateApi, ProductListApi
from apps.common.routing import routes_by_method
from apps.projects.services import app_create
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db


def test_each_method_reaches_its_view_and_allow_names_the_whole_path(alice: Tenant) -> None:
    api = alice.client()
    assert api.get("/api/v1/products").json() == {"results": [], "next_cursor": None}
    created = api.post("/api/v1/products", {"slug": "audit", "name": "Audit"}, format="json")
    assert created.status_code == 201
    for method in ("get", "head", "options", "put", "delete"):
        response = getattr(api, method)("/api/v1/products")
        assert response["Allow"] == "GET, POST, HEAD, OPTIONS", method
        assert response.status_code == (405 if method in ("put", "delete") else 200), method
    assert api.put("/api/v1/products").json() == {"detail": 'Method "PUT" not allowed.'}


def test_each_view_keeps_its_own_scopes_and_authentication(alice: Tenant, client: Client) -> None:
    _, key = app_create(project=alice.project, name="reader", scopes=["entitlements:read"])
    reader = {"X-API-Key": key}
    assert client.get("/api/v1/products", headers=reader).status_code == 200
    body = {"slug": "a", "name": "A"}
    refused = client.post("/api/v1/products", body, content_type="application/json", headers=reader)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "This API key lacks the scope(s): catalog:write."}
    # No key: 401 before anything else, for a routed method and for one that is not.
    assert client.post("/api/v1/products").status_code == 401
    assert client.put("/api/v1/products").status_code == 401


def test_the_schema_has_each_operation_with_its_own_view(client: Client) -> None:
    path = json.loads(client.get("/api/schema/?format=json").content)["paths"]["/api/v1/products"]
    assert {method: op["operationId"] for method, op in path.items()} == {
        "get": "product_list",
        "post": "product_create",
    }
    assert "Idempotency-Key" in [p["name"] for p in path["post"]["parameters"]]
    assert "Idempotency-Key" not in [p["name"] for p in path["get"].get("parameters", [])]


def test_a_method_served_by_two_views_is_refused() -> None:
    class Again(APIView):
        def get(self) -> None: ...

    with pytest.raises(ValueError, match="GET Again"):
        routes_by_method(ProductListApi, ProductCreateApi, Again)
