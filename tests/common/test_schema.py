from __future__ import annotations

import re
from typing import Any

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
        # Stripe authenticates its webhook by signature, not by a key.
        expected: list[dict[str, list[str]]] = (
            [] if op["operationId"].endswith("webhooks_stripe_receive") else [{"ApiKeyAuth": []}]
        )
        assert op["security"] == expected, op["operationId"]


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


def _schema(client: Client) -> dict[str, Any]:
    return dict(yaml.safe_load(client.get("/api/schema/").content))


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]


def test_every_operation_declares_every_status_it_can_answer_with_its_body(client: Client) -> None:
    schema = _schema(client)
    idempotent = {
        "checkout_session_create",
        "portal_session_create",
        "product_create",
        "replay_create",
        "grant_create",
        "invoice_create",
        "invoice_checkout_create",
        "billing_session_regenerate",
        "reconciliation_run_create",
        "notification_endpoint_create",
    }
    # catalog_sync answers 202 before any Stripe call: its worker meets Stripe, not the request.
    stripe_callers = {"checkout_session_create", "portal_session_create"}
    for path, _method, op in _operations(schema):
        responses, name = op["responses"], op["operationId"]
        for code, answer in responses.items():
            assert "content" in answer, (name, code)  # every answer has its body's shape
        if not op["security"]:
            continue
        expected = {"400", "401", "403", "429"}
        expected |= {"404"} if "{" in path else set()
        expected |= {"409"} if name in idempotent else set()
        expected |= {"413", "415"} if "requestBody" in op else set()
        expected |= {"502"} if name in stripe_callers else set()
        assert expected <= set(responses), (name, sorted(expected - set(responses)))
        assert responses["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in responses["429"]["headers"]
    assert schema["components"]["schemas"]["StripeError"]["required"] == ["detail", "stripe_request_id"]


def test_the_idempotency_key_header_is_declared_where_it_is_honoured(client: Client) -> None:
    schema = _schema(client)
    honoured = {
        op["operationId"]
        for _, _, op in _operations(schema)
        if any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in op.get("parameters", []))
    }
    assert honoured == {
        "checkout_session_create",
        "portal_session_create",
        "product_create",
        "replay_create",
        "grant_create",
        "invoice_create",
        "invoice_checkout_create",
        "billing_session_regenerate",
        "reconciliation_run_create",
        "notification_endpoint_create",
    }


def test_one_path_template_per_route(client: Client) -> None:
    # OpenAPI forbids templates that differ only in their parameters' names.
    shapes = [re.sub(r"\{[^}]+\}", "{}", path) for path in _schema(client)["paths"]]
    assert len(shapes) == len(set(shapes)), sorted(shapes)
    assert "/api/v1/products/{product}" in _schema(client)["paths"]


def test_the_constraints_the_server_enforces_are_declared(client: Client) -> None:
    schema = _schema(client)
    params = {
        (op["operationId"], p["name"]): p["schema"]
        for _, _, op in _operations(schema)
        for p in op.get("parameters", [])
    }
    for operation in ("catalog_prices_list", "product_list"):
        assert params[(operation, "limit")] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
        assert params[(operation, "cursor")]["minLength"] == 1
    assert params[("entitlements_list", "as_of")] == {"type": "string", "format": "date-time"}
    assert params[("metrics_revenue", "from")]["format"] == "date-time"
    assert params[("entitlements_check", "user_id")]["maxLength"] == 255
    assert params[("entitlements_check", "feature_code")]["maxLength"] == 64
    grant = schema["components"]["schemas"]["GrantCreateInputRequest"]["properties"]
    assert grant["reason"]["maxLength"] == 2000 and grant["feature_code"]["maxLength"] == 64


def test_the_stripe_webhook_is_documented_under_both_its_paths(client: Client) -> None:
    paths = _schema(client)["paths"]
    for path in ("/api/v1/webhooks/stripe", "/api/v1/billing/webhooks/stripe"):
        op = paths[path]["post"]
        assert op["security"] == []
        assert [(p["in"], p["name"], p["required"]) for p in op["parameters"]] == [("header", "Stripe-Signature", True)]
        assert set(op["responses"]) == {"200", "400", "413", "503"}


def test_the_examples_work_against_the_demo(client: Client) -> None:
    """Feature codes and redirect URLs of the examples are the demo's (`make run`)."""
    from apps.catalog.demo import DEMO_CATALOG
    from apps.projects.demo import DEMO_FEATURE_CODES, DEMO_REDIRECT_PREFIXES

    codes = {price.feature_code for product in DEMO_CATALOG for price in product.prices} | set(DEMO_FEATURE_CODES)
    prefixes = (*DEMO_REDIRECT_PREFIXES, "http://127.0.0.1:8000/")
    for _, _, op in _operations(_schema(client)):
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        for example in body.get("examples", {}).values():
            value = example["value"]
            if "feature_code" in value:
                assert value["feature_code"] in codes, (op["operationId"], value["feature_code"])
            for field in ("success_url", "cancel_url", "return_url"):
                if field in value:
                    assert value[field].startswith(prefixes), (op["operationId"], value[field])
