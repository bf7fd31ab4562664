"""API key format and hashing.

A key reads `bk_<prefix>_<secret>`. The prefix (8 lowercase letters and digits) is stored in clear to
find the row and to show operators which key is which; the whole key is stored only as
HMAC-SHA256(API_KEY_PEPPER, key). A keyed hash is enough because the secret has 256 bits of entropy:
PBKDF2 guards guessable passwords and would cost milliseconds on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from django.conf import settings

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_KEY_PATTERN = re.compile(r"^bk_([a-z0-9]{8})_([A-Za-z0-9_-]{16,128})$")


@dataclass(frozen=True)
class NewKey:
    raw: str
    prefix: str
    digest: str


def key_digest(raw: str) -> str:
    return hmac.new(settings.API_KEY_PEPPER.encode(), raw.encode(), hashlib.sha256).hexdigest()


def digests_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def prefix_of(raw: str) -> str | None:
    """The lookup prefix of a well-formed key, or None for anything else."""
    match = _KEY_PATTERN.match(raw)
    return match.group(1) if match else None


def key_from_raw(raw: str) -> NewKey:
    prefix = prefix_of(raw)
    if prefix is None:
        raise ValueError("not a well-formed API key (expected bk_<8 chars>_<secret>)")
    return NewKey(raw=raw, prefix=prefix, digest=key_digest(raw))


def generate_key() -> NewKey:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return key_from_raw(f"bk_{prefix}_{secrets.token_urlsafe(32)}")
