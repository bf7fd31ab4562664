"""Redirect allowlists: checkout and portal URLs must start with one of the project's prefixes.

A plain `startswith` would let `https://app.example` admit `https://app.example.evil.io`, so a URL
matches a prefix only when scheme and host (with port) are equal and the path continues the prefix's
path at a segment boundary.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def validate_redirect_prefix(prefix: str) -> None:
    parts = urlsplit(prefix)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"{prefix!r} is not an absolute http(s) URL prefix.")
    if parts.query or parts.fragment:
        raise ValidationError(f"{prefix!r} must not have a query or fragment.")


def url_is_allowed(url: str, prefixes: list[str]) -> bool:
    try:
        target = urlsplit(url)
    except ValueError:
        return False
    if target.scheme not in ("http", "https") or not target.netloc or "@" in target.netloc:
        return False
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (target.scheme, target.netloc.lower()) != (allowed.scheme, allowed.netloc.lower()):
            continue
        base = allowed.path or "/"
        if target.path == base.rstrip("/") or target.path.startswith(base if base.endswith("/") else base + "/"):
            return True
    return False
