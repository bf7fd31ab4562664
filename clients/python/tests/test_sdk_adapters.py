"""The three receivers of notifications: a Django view, a WSGI and an ASGI application."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import billing_client
import pytest
from billing_client import BillingClient, signature_header
from billing_client import asgi as billing_asgi
from billing_client import wsgi as billing_wsgi
from sdk_fakes import SECRET, FakeService, item, notification_body, signed

if TYPE_CHECKING:
    from django.test import RequestFactory


@pytest.fixture
def request_factory() -> RequestFactory:
    django = pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:  # run outside the service's suite (pytest-django configures it there)
        settings.configure(ALLOWED_HOSTS=["testserver"])
        django.setup()
    from django.test import RequestFactory

    return RequestFactory()


def test_the_package_and_its_adapters_import_without_django() -> None:
    code = (
        "import sys; sys.modules['django'] = None\n"  # any `import django` now fails
        "import billing_client, billing_client.wsgi, billing_client.asgi, billing_client.django\n"
        "print(billing_client.__version__)"
    )
    # A fixed command line: this interpreter and the code above.
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == billing_client.__version__


def test_the_django_view_applies_a_signed_notification(
    service: FakeService, client: BillingClient, request_factory: RequestFactory
) -> None:
    from billing_client.django import notification_view

    view = notification_view(client)
    body = notification_body("u1", 1, [item("pro")])
    request = request_factory.post("/billing/notify", data=body, content_type="application/json", headers=signed(body))

    response = view(request)

    assert response.status_code == 204
    assert client.has_feature("u1", "pro") is True
    assert service.requests == []
    assert getattr(view, "csrf_exempt", False) is True


def test_the_django_view_refuses_a_bad_signature_and_other_methods(
    client: BillingClient, request_factory: RequestFactory
) -> None:
    from billing_client.django import notification_view

    view = notification_view(client)
    body = notification_body("u1", 1, [item("pro")])

    refused = view(
        request_factory.post("/n", data=body, content_type="application/json", headers=signed(body, "whsec_other"))
    )
    not_json = b"{"
    malformed = view(
        request_factory.post("/n", data=not_json, content_type="application/json", headers=signed(not_json))
    )
    fetched = view(request_factory.get("/n"))

    assert (refused.status_code, refused.content) == (400, b"no v1 signature matches a configured secret")
    assert malformed.status_code == 400
    assert fetched.status_code == 405


def _wsgi_call(client: BillingClient, method: str, body: bytes, headers: dict[str, str]) -> tuple[str, bytes]:
    app = billing_wsgi.notification_app(client)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/billing/notify",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    statuses: list[str] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    content = b"".join(app(environ, start_response))
    return statuses[0], content


def test_the_wsgi_app_applies_a_signed_notification_and_refuses_the_rest(client: BillingClient) -> None:
    body = notification_body("u1", 1, [item("pro")])

    assert _wsgi_call(client, "POST", body, signed(body)) == ("204 No Content", b"")
    assert client.has_feature("u1", "pro") is True

    status, content = _wsgi_call(client, "POST", body, {"X-Billing-Signature": "t=1,v1=00"})
    assert status == "400 Bad Request" and b"tolerance" in content
    assert _wsgi_call(client, "GET", b"", {})[0] == "405 Method Not Allowed"


def _asgi_call(
    client: BillingClient, method: str, chunks: list[bytes], headers: dict[str, str]
) -> tuple[int, bytes, dict[bytes, bytes]]:
    app = billing_asgi.notification_app(client)
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": method,
        "path": "/billing/notify",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
    }
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], body["body"], dict(start["headers"])


def test_the_asgi_app_applies_a_signed_notification_sent_in_chunks(client: BillingClient) -> None:
    body = notification_body("u1", 1, [item("pro")])
    header = signature_header(body, SECRET)

    status, content, headers = _asgi_call(client, "POST", [body[:10], body[10:]], {"X-Billing-Signature": header})

    assert (status, content) == (204, b"")
    assert headers[b"content-length"] == b"0"
    assert client.has_feature("u1", "pro") is True


def test_the_asgi_app_refuses_a_bad_signature_and_other_methods(client: BillingClient) -> None:
    body = notification_body("u1", 1, [item("pro")])

    status, content, _ = _asgi_call(client, "POST", [body], signed(body, "whsec_other"))
    assert status == 400 and b"no v1 signature matches" in content
    assert _asgi_call(client, "GET", [b""], {})[0] == 405
    assert client.has_feature("u1", "pro") is False


def test_the_asgi_app_completes_the_lifespan_protocol(client: BillingClient) -> None:
    app = billing_asgi.notification_app(client)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
