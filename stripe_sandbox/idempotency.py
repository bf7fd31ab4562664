"""Idempotency-Key: same key and same request -> the same response, replayed; same key with
different parameters -> 400 ``idempotency_error``. Stripe keeps keys 24 h; the sandbox keeps
them until reset (5xx answers are not stored, so they can be retried)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class StoredResponse:
    fingerprint: str
    status: int
    body: str


def fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    canonical = json.dumps([method, path, params], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyCache:
    def __init__(self) -> None:
        self.responses: dict[str, StoredResponse] = {}

    def get(self, key: str) -> StoredResponse | None:
        return self.responses.get(key)

    def put(self, key: str, stored: StoredResponse) -> None:
        self.responses[key] = stored

    def reset(self) -> None:
        self.responses.clear()
