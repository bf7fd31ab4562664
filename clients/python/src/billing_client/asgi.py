"""An ASGI 3 application that receives the service's notifications (mount it at the endpoint's path).

The notification is handled on the event loop: verifying it and updating the cache take microseconds
and wait for nothing; an on_notification callback that blocks should hand its work to a thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from billing_client._receiving import MAX_BODY_BYTES, answer
from billing_client.client import BillingClient

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body; None when the client went away or the body is too large."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def notification_app(client: BillingClient) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"billing_client.asgi serves HTTP, not {scope['type']!r}")
        body = await _read_body(receive) if scope["method"] == "POST" else b""
        if body is None:
            status, text = 413, b"body too large or request abandoned\n"
        else:
            headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])}
            status, text = answer(client, scope["method"], body, headers)
        response_headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(text))]
        if status == 405:
            response_headers.append((b"allow", b"POST"))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": text})

    return app
