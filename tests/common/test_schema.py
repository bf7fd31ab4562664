from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_schema_declares_the_api_key_scheme_and_uses_it(client: Client) -> None:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A key issued for your micro-app: `bk_<prefix>_<secret>`. Ask the billing team.",
    }
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert operations
    for op in operations:
        assert op["security"] == [{"ApiKeyAuth": []}], op["operationId"]


def test_every_operation_has_a_summary_and_examples(client: Client) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)
    for method_and_ops in schema["paths"].values():
        for method, op in method_and_ops.items():
            assert op.get("summary"), op["operationId"]
            success = next(r for code, r in op["responses"].items() if code.startswith("2"))
            assert success["content"]["application/json"].get("examples"), op["operationId"]
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if method in ("post", "put", "patch") and body is not None:
                assert body.get("examples"), f"{op['operationId']} has no request example"


def test_the_schema_generates_without_warnings(tmp_path: object) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", f"{tmp_path}/schema.yaml")


def test_swagger_ui_is_served(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
