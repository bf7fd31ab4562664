"""Fault injection: make chosen endpoints answer 429/500 or slowly.

A fault answers *before* the handler runs, so the write is not applied and a retry with
the same Idempotency-Key creates exactly one object. ``after_apply`` faults run the handler
(and record its response under the Idempotency-Key) and then answer 500, which proves that
an idempotent retry does not duplicate a write whose response was lost.

A rule lasts for ``count`` requests, or ``duration_s`` seconds, or until cleared; it can let the
first ``start_after`` matching requests through (a run that fails after some pages), and it
applies to the requests whose path starts with one of its prefixes (and ``method``).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from .errors import invalid

_ids = itertools.count(1)


@dataclass
class FaultRule:
    id: int
    path_prefix: str
    method: str | None
    status: int | None
    count: int | None
    rate: float | None
    retry_after: int | None
    delay_ms: int
    after_apply: bool
    should_retry: bool | None = None  # sent as Stripe-Should-Retry: true/false when set
    fired: int = 0
    # More prefixes besides ``path_prefix`` (a rule for several routes shares one count).
    also_paths: list[str] = field(default_factory=list)
    start_after: int = 0  # matching requests let through before the rule fires
    expires_at: float | None = None  # wall-clock time (``duration_s`` after it was added)
    passed: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return path.startswith(self.path_prefix) or any(path.startswith(prefix) for prefix in self.also_paths)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def response(self) -> web.Response:
        status = self.status or 500
        headers: dict[str, str] = {}
        error: dict[str, str | None]
        if status == 429:
            error = {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Too many requests (sandbox fault).",
            }
            if self.retry_after is not None:
                headers["Retry-After"] = str(self.retry_after)
        elif status >= 500:
            # No ``code``/``param`` keys: Stripe leaves them out when they do not apply.
            error = {"type": "api_error", "message": "An error occurred (sandbox fault)."}
        else:
            error = {"type": "invalid_request_error", "message": "Sandbox fault."}
        if self.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if self.should_retry else "false"
        return web.Response(
            status=status, text=json.dumps({"error": error}), content_type="application/json", headers=headers
        )


class FaultRegistry:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, spec: dict[str, Any]) -> FaultRule:
        allowed = {
            "path_prefix",
            "method",
            "status",
            "count",
            "rate",
            "retry_after",
            "delay_ms",
            "after_apply",
            "should_retry",
            "duration_s",
            "start_after",
        }
        unknown = set(spec) - allowed
        if unknown:
            raise invalid(f"Unknown fault fields: {sorted(unknown)}")
        status = spec.get("status")
        delay_ms = int(spec.get("delay_ms") or 0)
        if status is None and delay_ms == 0:
            raise invalid("A fault needs a status or a delay_ms")
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise invalid("status must be an HTTP error status", "status")
        rate = spec.get("rate")
        if rate is not None and not (isinstance(rate, int | float) and 0 < rate <= 1):
            raise invalid("rate must be in (0, 1]", "rate")
        should_retry = spec.get("should_retry")
        if should_retry is not None and not isinstance(should_retry, bool):
            raise invalid("should_retry must be true or false", "should_retry")
        method = spec.get("method")
        prefixes = spec.get("path_prefix", "/v1/")
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        if not (isinstance(prefixes, list) and prefixes and all(isinstance(p, str) for p in prefixes)):
            raise invalid("path_prefix must be a path prefix or a list of them", "path_prefix")
        duration = spec.get("duration_s")
        if duration is not None and not (isinstance(duration, int | float) and duration > 0):
            raise invalid("duration_s must be a positive number of seconds", "duration_s")
        start_after = spec.get("start_after", 0)
        if not (isinstance(start_after, int) and start_after >= 0):
            raise invalid("start_after must be a number of requests", "start_after")
        count = spec.get("count")
        if count is not None and not (isinstance(count, int) and count > 0):
            raise invalid("count must be a positive number of requests", "count")
        rule = FaultRule(
            id=next(_ids),
            path_prefix=prefixes[0],
            also_paths=prefixes[1:],
            start_after=start_after,
            expires_at=time.time() + float(duration) if duration is not None else None,
            method=method.upper() if isinstance(method, str) else None,
            status=status,
            count=count,
            rate=float(rate) if rate is not None else None,
            retry_after=int(spec["retry_after"]) if spec.get("retry_after") is not None else None,
            delay_ms=delay_ms,
            after_apply=bool(spec.get("after_apply", False)),
            should_retry=should_retry,
        )
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule that fires for this request; consumes one of its ``count``."""
        now = time.time()
        self.rules = [rule for rule in self.rules if not rule.expired(now)]
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            if rule.passed < rule.start_after:
                rule.passed += 1
                continue
            if rule.rate is not None and random.random() >= rule.rate:
                continue
            rule.fired += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            return rule
        return None

    def as_list(self) -> list[dict[str, Any]]:
        now = time.time()
        return [asdict(rule) for rule in self.rules if not rule.expired(now)]
