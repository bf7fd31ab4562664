"""The error envelope: JSON everywhere under /api/, request ids, no tracebacks."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from django.test import Client
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.projects.permissions import CLIENT_PERMISSIONS
from billing_service.logging import build_logging_config
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db


class BrokenView(APIView):
    permission_classes = CLIENT_PERMISSIONS

    def get(self, request: Request) -> Response:
        structlog.get_logger("billing.test").info("about_to_fail", step=1)
        raise RuntimeError("secret internals: password=hunter2")

    def post(self, request: Request) -> Response:
        return Response({"echo": request.data})


urlpatterns = [path("api/v1/broken", BrokenView.as_view()), path("", include("billing_service.urls"))]


@pytest.mark.urls(__name__)
def test_an_unhandled_exception_is_a_json_500_with_the_request_id_and_no_traceback(alice: Tenant) -> None:
    client = alice.client()
    client.raise_request_exception = False
    response = client.get("/api/v1/broken")
    assert response.status_code == 500
    body = response.json()
    assert body == {"detail": "Internal server error.", "request_id": response["X-Request-ID"]}
    assert "hunter2" not in response.content.decode()
    assert "Traceback" not in response.content.decode()


@pytest.mark.urls(__name__)
def test_a_body_that_is_not_json_is_a_400(alice: Tenant) -> None:
    response = alice.client().post("/api/v1/broken", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.urls(__name__)
def test_a_body_that_is_not_json_content_type_is_a_415(alice: Tenant) -> None:
    response = alice.client().post("/api/v1/broken", data="a=b", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]


def test_an_unknown_api_path_is_a_json_404(client: Client) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_request_id_is_made_up_when_none_is_sent_and_kept_when_one_is(client: Client) -> None:
    made_up = client.get("/health")["X-Request-ID"]
    assert len(made_up) == 32
    assert client.get("/health", HTTP_X_REQUEST_ID="caller-id-1234")["X-Request-ID"] == "caller-id-1234"
    # Anything that could forge log lines is replaced.
    forged = client.get("/health", HTTP_X_REQUEST_ID="x\nlevel=error fake")["X-Request-ID"]
    assert "\n" not in forged and forged != "x\nlevel=error fake"


@pytest.mark.urls(__name__)
def test_every_log_line_of_a_request_carries_its_request_id_in_json(alice: Tenant, capfd: object) -> None:
    config = build_logging_config(fmt="json", level="INFO")
    formatter = logging.config.DictConfigurator(config).configure_custom(dict(config["formatters"]["structured"]))  # type: ignore[attr-defined]
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        client = alice.client()
        client.raise_request_exception = False
        response = client.get("/api/v1/broken", HTTP_X_REQUEST_ID="trace-abc-123")
    finally:
        root.removeHandler(handler)
    records = [json.loads(line) for line in lines]
    events = {r["event"] for r in records}
    assert {"about_to_fail", "unhandled_exception", "request"} <= events
    assert all(r["request_id"] == "trace-abc-123" for r in records)
    request_line = next(r for r in records if r["event"] == "request")
    assert request_line["status"] == 500 and request_line["app_id"] == alice.app.pk
    failure = next(r for r in records if r["event"] == "unhandled_exception")
    assert "RuntimeError" in failure["exception"]  # the traceback goes to the log, not the caller
    assert response["X-Request-ID"] == "trace-abc-123"


def test_an_unknown_api_path_is_json_even_with_debug_on(client: Client, settings: object) -> None:
    settings.DEBUG = True  # type: ignore[attr-defined]
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
