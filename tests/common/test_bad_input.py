"""Bad input never causes a 500: each kind the fuzzer found is a 4xx, and nothing is logged as an error.

The cases are the fuzzing run's findings: a body over the size limit (DRF routes and the Stripe
webhook), JSON nested deeper than 100 levels, NUL bytes in the path, the query or a body string
(PostgreSQL text cannot hold them), and a number where the schema declares a string.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from django.conf import settings as django_settings
from django.test import Client

from apps.catalog.models import CatalogProduct, PriceFeature
from apps.common.errors import PayloadTooLarge
from apps.common.parsers import BoundedJSONParser
from apps.entitlements.models import Grant
from tests.conftest import Tenant
from tests.factories import CatalogProductFactory, PriceFeatureFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_error_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bad input is the caller's mistake: a warning at most, never an error record or a traceback."""
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]


def grant_body(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    return {
        "user_id": "u1",
        "project_id": tenant.project.pk,
        "feature_code": "labs",
        "granted_by": "support@example.com",
        "reason": "pilot",
    } | changes


# --- oversized bodies ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_with_the_json_error_shape(labs: Tenant) -> None:
    limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps(grant_body(labs, reason="x" * limit))
    response = labs.client().post("/api/v1/admin/grant", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {"detail": f"The request body exceeds the limit of {limit} bytes."}
    assert not Grant.objects.exists()


def test_a_body_over_the_limit_is_413_at_the_stripe_webhook_too(client: Client) -> None:
    body = b'{"id": "evt_1", "pad": "' + b"x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}'
    for path in ("/api/v1/webhooks/stripe", "/api/v1/billing/webhooks/stripe"):
        response = client.post(path, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00")
        assert response.status_code == 413, path
        assert "exceeds the limit" in response.json()["detail"]


def test_the_parser_bounds_what_it_reads_itself(settings: Any) -> None:
    # The middleware answers 413 from Content-Length first; the parser is the backstop for a stream
    # whose declared length it cannot trust, and reads one byte past the limit, never the whole body.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    stream = io.BytesIO(b'{"reason": "' + b"x" * 300 + b'"}')
    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(stream)
    assert stream.tell() == 201


# "²" passes str.isdigit(), not int(); 5000 digits pass both checks but exceed int()'s digit limit.
@pytest.mark.parametrize("length", ["twelve", "\u00b2", "9" * 5000])
def test_a_content_length_that_is_not_a_number_is_400(labs: Tenant, length: str) -> None:
    response = labs.client().post(
        "/api/v1/admin/grant", data="{}", content_type="application/json", CONTENT_LENGTH=length
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "The Content-Length header is not a number."}


# --- deep nesting and non-standard JSON ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/admin/grant"),
        ("post", "/api/v1/products"),
        ("post", "/api/v1/checkout/session"),
        ("put", "/api/v1/catalog/prices/price_1/feature"),
    ],
)
def test_json_nested_deeper_than_100_levels_is_400_on_every_json_route(labs: Tenant, method: str, path: str) -> None:
    body = '{"reason": ' + "[" * 1000 + "]" * 1000 + "}"
    response = getattr(labs.client(), method)(path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - JSON nested deeper than 100 levels is not accepted."}


def test_json_100_levels_deep_is_still_parsed(labs: Tenant) -> None:
    body = json.dumps(grant_body(labs) | {"extra": json.loads("[" * 99 + "]" * 99)})
    response = labs.client().post("/api/v1/admin/grant", data=body, content_type="application/json")
    assert response.status_code == 201


def test_nan_is_not_json(labs: Tenant) -> None:
    body = '{"user_id": "u1", "quantity": NaN}'
    response = labs.client().post("/api/v1/checkout/session", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "NaN" in response.json()["detail"]


# --- NUL bytes -------------------------------------------------------------------------------------


def test_a_nul_in_a_query_value_is_400_and_not_echoed(labs: Tenant) -> None:
    p = labs.project.pk
    client = labs.client()
    for query in (
        f"user_id=u%001&project_id={p}",
        f"user_id=u1&project_id={p}&feature_code=pro%00",
        f"user_id=u1&project_id={p}&as_of=2026-01-01T00:00:00Z%00",
    ):
        response = client.get(f"/api/v1/entitlements?{query}")
        assert response.status_code == 400, query
        assert response.json() == {"detail": "NUL characters (%00) are not accepted in the path or the query."}
    check = client.get(f"/api/v1/entitlements/check?user_id=u1&project_id={p}&feature_code=pro%00")
    assert check.status_code == 400
    assert "\x00" not in check.content.decode() and "pro" not in check.content.decode()


def test_a_nul_in_a_query_name_is_400(labs: Tenant) -> None:
    response = labs.client().get(f"/api/v1/entitlements?user_id=u1&project_id={labs.project.pk}&x%00=1")
    assert response.status_code == 400


def test_a_nul_in_a_path_value_is_400(labs: Tenant) -> None:
    PriceFeatureFactory.create(project=labs.project, stripe_price_id="price_1", feature_code="pro")
    client = labs.client()
    response = client.put("/api/v1/catalog/prices/price_1%00/feature", {"feature_code": "pro"}, format="json")
    assert response.status_code == 400
    assert client.get("/api/v1/products/pro%00").status_code == 400


def test_a_nul_in_a_body_string_is_400(labs: Tenant) -> None:
    client = labs.client()
    for body in (grant_body(labs, reason="VIP\x00pilot"), grant_body(labs, user_id="\x00"), {"\x00": 1}):
        response = client.post("/api/v1/admin/grant", body, format="json")
        assert response.status_code == 400, body
        assert response.json() == {"detail": "NUL characters (\\u0000) are not accepted."}
    assert not Grant.objects.exists()


def test_a_lone_surrogate_in_a_body_string_is_400(labs: Tenant) -> None:
    # Legal as a JSON escape, but not encodable as UTF-8: PostgreSQL could never store it.
    body = json.dumps(grant_body(labs)).replace('"pilot"', '"pilot \\ud800"')
    assert "\\ud800" in body
    response = labs.client().post("/api/v1/admin/grant", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Lone UTF-16 surrogate escapes (such as \\ud800) are not accepted."}
    assert not Grant.objects.exists()


# --- a number where the schema says string -----------------------------------------------------------


def test_a_number_for_a_string_is_refused_with_drfs_field_error(labs: Tenant) -> None:
    PriceFeatureFactory.create(project=labs.project, stripe_price_id="price_1", feature_code="pro")
    client = labs.client()
    response = client.put("/api/v1/catalog/prices/price_1/feature", {"feature_code": 0}, format="json")
    assert response.status_code == 400
    assert response.json() == {"feature_code": ["Not a valid string."]}
    assert PriceFeature.objects.get(stripe_price_id="price_1").feature_code == "pro"

    response = client.post("/api/v1/admin/grant", grant_body(labs, reason=0), format="json")
    assert response.status_code == 400
    assert response.json() == {"reason": ["Not a valid string."]}
    assert not Grant.objects.exists()


def test_other_json_types_are_as_strict_as_strings(labs: Tenant) -> None:
    client = labs.client()
    response = client.post("/api/v1/admin/grant", grant_body(labs, project_id=str(labs.project.pk)), format="json")
    assert response.status_code == 400
    assert response.json() == {"project_id": ["A valid integer is required."]}
    response = client.post("/api/v1/products", {"slug": "p", "name": "P", "active": 0}, format="json")
    assert response.status_code == 400
    assert response.json() == {"active": ["Must be a valid boolean."]}


def test_a_number_for_a_nested_string_names_the_item(labs: Tenant) -> None:
    configuration = {"add_ons": [{"name": "ok", "price_delta": 1}, {"name": 7, "price_delta": 1}]}
    response = labs.client().post(
        "/api/v1/products", {"slug": "p", "name": "P", "configuration": configuration}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"configuration": {"add_ons": {"1": {"name": ["Not a valid string."]}}}}
    assert not CatalogProduct.objects.exists()


def _string_properties(schema: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    component = schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
    return sorted(
        name
        for name, prop in component.get("properties", {}).items()
        if prop.get("type") == "string" and not prop.get("readOnly")
    )


def test_every_string_field_of_every_json_body_refuses_a_number(labs: Tenant, client: Client) -> None:
    """The strictness is global: swept over the schema, so that a new input serializer is covered too."""
    schema = yaml.safe_load(client.get("/api/schema/").content)
    product = CatalogProductFactory.create(project=labs.project, slug="audit", name="Audit")
    values = {"{product_id}": str(product.pk), "{product}": "audit", "{price_id}": "price_1"}
    api = labs.client()
    checked = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "$ref" not in body.get("schema", {}) or not operation.get("security"):
                continue  # no JSON body, or not a keyed route (the Stripe webhook parses its own)
            url = path
            for placeholder, value in values.items():
                url = url.replace(placeholder, value)
            # Any other id (an invoice, a session, a discrepancy): the body is checked before the lookup.
            url = re.sub(r"\{[a-z_]+\}", "999999", url)
            for name in _string_properties(schema, body["schema"]):
                response = getattr(api, method)(url, {name: 0}, format="json")
                assert response.status_code == 400, (method, path, name, response.content[:300])
                assert response.json().get(name) == ["Not a valid string."], (method, path, name, response.json())
                checked += 1
    assert checked >= 20


# --- instants ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "as_of",
    [
        "2026-13-01T00:00:00Z",  # well-formed, impossible: parse_datetime raised ValueError (a 500)
        "2026-02-30T00:00:00Z",
        "2026-01-01T00:00:00",  # no offset
        "20260101T000000Z",  # ISO 8601 basic format, not RFC 3339
        "2026-W01-1T00:00:00Z",  # a week date
        "9999-12-31T23:59:59-23:00",  # past the end of the calendar in UTC
    ],
)
def test_an_instant_that_is_not_rfc_3339_is_400(labs: Tenant, as_of: str) -> None:
    p = labs.project.pk
    response = labs.client().get(f"/api/v1/entitlements?user_id=u1&project_id={p}&as_of={as_of}")
    assert response.status_code == 400
    assert list(response.json()) == ["as_of"]
    response = labs.client().get(f"/api/v1/metrics/project/{p}/revenue?from={as_of}")
    assert response.status_code == 400


def test_an_rfc_3339_instant_is_accepted_with_any_offset(labs: Tenant) -> None:
    p = labs.project.pk
    for as_of in (
        "2026-01-01T00:00:00Z",
        "2026-01-01t00:00:00.5z",
        "2026-01-01T01:00:00%2B01:00",
        "2181-12-05T10:31:23.647-23:29",  # beyond PostgreSQL's ±15:59: a DataError (500) before
    ):
        response = labs.client().get(f"/api/v1/entitlements?user_id=u1&project_id={p}&as_of={as_of}")
        assert response.status_code == 200, as_of
        assert labs.client().get(f"/api/v1/metrics/project/{p}/revenue?from={as_of}").status_code == 200, as_of
