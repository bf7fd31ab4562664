"""A WSGI application that receives the service's notifications (mount it at the endpoint's path)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from billing_client._receiving import MAX_BODY_BYTES, answer
from billing_client.client import BillingClient

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_REASONS = {204: "No Content", 400: "Bad Request", 405: "Method Not Allowed", 413: "Content Too Large"}


def _headers(environ: WSGIEnvironment) -> dict[str, str]:
    return {
        key[5:].replace("_", "-").title(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }


def notification_app(client: BillingClient) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            status, body = 413 if length > MAX_BODY_BYTES else 400, b"bad Content-Length\n"
        else:
            raw = environ["wsgi.input"].read(length) if length else b""
            status, body = answer(client, environ.get("REQUEST_METHOD", ""), raw, _headers(environ))
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        if status == 405:
            headers.append(("Allow", "POST"))
        start_response(f"{status} {_REASONS.get(status, '')}".rstrip(), headers)
        return [body]

    return app
