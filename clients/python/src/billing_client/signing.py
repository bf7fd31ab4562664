"""X-Billing-Signature: `t=<unix>,v1=<hex>[,v1=<hex>...]`, each v1 the HMAC-SHA256 of "<t>.<body>".

The scheme is Stripe's. During a secret rotation the service signs with both secrets (two v1), and a
receiver configured with either one accepts the notification; a receiver may also list both secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping, Sequence

from billing_client.errors import InvalidSignature

SIGNATURE_HEADER = "X-Billing-Signature"
_HEADER_NAMES = frozenset({"x-billing-signature", "http-x-billing-signature"})  # HTTP and WSGI/CGI spellings


def normalise_secrets(secrets: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(secrets, str):
        secrets = (secrets,)
    return tuple(s for s in secrets if s)


def compute_signature(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secrets: str | Sequence[str], timestamp: int | None = None) -> str:
    """The header value the service sends: for a local receiver's tests, or a tool that replays a body."""
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={compute_signature(body, s, t)}" for s in normalise_secrets(secrets))])


def header_value(headers: Mapping[str, str]) -> str | None:
    """The signature header, whatever its case and whether `headers` is HTTP headers or a WSGI environ."""
    for name in (SIGNATURE_HEADER, "HTTP_X_BILLING_SIGNATURE"):
        value = headers.get(name)
        if value is not None:
            return value
    for name, value in headers.items():
        if isinstance(name, str) and name.lower().replace("_", "-") in _HEADER_NAMES:
            return value
    return None


def _parsed(value: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(item)
            except ValueError as exc:
                raise InvalidSignature("the signature's timestamp is not an integer") from exc
        elif key == "v1":
            candidates.append(item)
    if timestamp is None:
        raise InvalidSignature("the signature has no timestamp (t=)")
    if not candidates:
        raise InvalidSignature("the signature has no v1 value")
    return timestamp, candidates


def verify(body: bytes, value: str | None, secrets: Iterable[str], *, tolerance: float, now: float) -> int:
    """Check a signature header against the secrets; returns its timestamp or raises InvalidSignature."""
    if not value:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    timestamp, candidates = _parsed(value)
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature(f"the signature's timestamp is outside the tolerance of {tolerance:.0f}s")
    expected = [compute_signature(body, secret, timestamp) for secret in secrets]
    if not expected:
        raise InvalidSignature("no notification secret is configured")
    # Every pair is compared in constant time: the time taken says nothing about how much of a guess was right.
    matched = False
    for candidate in candidates:
        for signature in expected:
            matched |= hmac.compare_digest(candidate.encode(), signature.encode())
    if not matched:
        raise InvalidSignature("no v1 signature matches a configured secret")
    return timestamp
