"""The signature of an outbound notification, in Stripe's scheme.

    X-Billing-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>[,v1=...]

One `v1` per secret that is valid now: the endpoint's current secret and, during a rotation's overlap
window (previous_secret_expires_at in the future), its previous one, so that a receiver still
configured with the old secret keeps accepting notifications until it switches. The key is the
whole secret string, `whsec_` prefix included, as Stripe's libraries use theirs.

`signature_verify` is the receiver's side, for our own smoke test and test receivers (the Python
SDK in clients/python has its own): constant-time comparison and a timestamp tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from apps.entitlements.notifications.models import NotificationEndpoint

SIGNATURE_HEADER = "X-Billing-Signature"
NOTIFICATION_ID_HEADER = "X-Billing-Notification-Id"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def signing_secrets(endpoint: NotificationEndpoint, *, now: datetime) -> list[str]:
    """The secrets that sign for `endpoint` at `now`: the current one first, then the previous one
    while its overlap window lasts."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(*, body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The header's value: `t=<timestamp>` and one `v1=` per secret, in the order given."""
    if not secrets:
        raise ValueError("at least one secret signs a notification")
    return ",".join([f"t={timestamp}", *(f"{SCHEME}={_digest(secret, timestamp, body)}" for secret in secrets)])


def _parsed(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
    return timestamp, signatures


def signature_verify(
    *, body: bytes, header: str, secret: str, now: float, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """Whether one of the header's `v1` is `secret`'s signature of `body` with a recent enough `t`."""
    timestamp, signatures = _parsed(header)
    if timestamp is None or abs(now - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, timestamp, body)
    # Every candidate is compared (no early exit), each in constant time.
    return sum(hmac.compare_digest(expected, candidate) for candidate in signatures) > 0
