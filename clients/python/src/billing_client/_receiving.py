"""What the WSGI and ASGI adapters share: the answer to a notification request."""

from __future__ import annotations

from collections.abc import Mapping

from billing_client.client import BillingClient
from billing_client.errors import InvalidNotification

# A notification is a few KiB; a body larger than this is refused before it is read.
MAX_BODY_BYTES = 1024 * 1024


def answer(client: BillingClient, method: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
    """(status, plain-text body) for one request to the receiver."""
    if method != "POST":
        return 405, b"POST only\n"
    try:
        client.handle_notification(body, headers)
    except InvalidNotification as exc:
        return 400, f"{exc}\n".encode()
    return 204, b""
