"""Stripe-Signature verification: the checks and rejection reasons are ours, the HMAC is the SDK's.

Header: `t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`. The signed payload is `<t>.<raw body>`
and each `v1` is HMAC-SHA256 of it under one endpoint secret. Several secrets are valid while one is
rotated, and Stripe sends one `v1` per secret it signs with: any (secret, v1) match accepts. `v0` is
a test-mode scheme we never accept. The match itself is `stripe.WebhookSignature.verify_header`,
called through the gateway (apps/common/stripe_gateway/signatures.py: only the gateway imports
`stripe`); the parse, the timestamp check in both directions and the reasons stay here, because the
SDK checks only the past and answers every failure with one exception type.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from apps.common.stripe_gateway.signatures import signed_by_any


class SignatureError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # a short, fixed label for metrics
        self.detail = detail


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise SignatureError("malformed_header", "Malformed Stripe-Signature header: bad timestamp.")
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("malformed_header", "Malformed Stripe-Signature header: no timestamp.")
    if not signatures:
        raise SignatureError("malformed_header", "Malformed Stripe-Signature header: no v1 signature.")
    return timestamp, signatures


def verify(header: str | None, body: bytes, *, secrets: Sequence[str], tolerance: int, now: float) -> int:
    """Returns the signed timestamp, or raises SignatureError saying what is wrong."""
    if not header:
        raise SignatureError("missing_header", "Missing Stripe-Signature header.")
    timestamp, signatures = _parse(header)
    # Both directions: a future timestamp is as suspicious as an old one (a replayed or forged body).
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp", f"Timestamp outside the tolerance of {tolerance} seconds.")
    if not secrets:
        raise SignatureError("no_secret", "No webhook signing secret is configured.")
    try:
        # The SDK signs text; JSON is UTF-8 (RFC 8259), so a body that is not cannot be an event
        # whatever its signature. Same answer and metric label as the parser gives it.
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("invalid_event", "The body is not JSON (not UTF-8).") from None
    # The SDK gets the header as we parsed it: its own parse neither strips spaces nor tolerates a
    # non-ASCII signature (compare_digest raises on one), and a header may carry anything.
    canonical = ",".join([f"t={timestamp}", *(f"v1={s}" for s in signatures if s.isascii())])
    if not signed_by_any(payload, canonical, secrets=secrets):
        raise SignatureError("bad_signature", "No signature matches the payload.")
    return timestamp


def sign(body: bytes, *, secret: str, timestamp: int) -> str:
    """The header Stripe would send: for tests, the benchmark and local tools (any bytes, not only UTF-8)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
