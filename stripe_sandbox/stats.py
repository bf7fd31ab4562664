"""Counts of the ``/v1`` requests the sandbox answered: what a test or benchmark reads to know how
many Stripe requests a run made, how many were faulted, and which routes it used."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any


class RequestStats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.since = time.time()
        self.total = 0
        self.by_route: Counter[str] = Counter()
        # Answers a fault rule gave (by status), as the client saw them.
        self.faulted: Counter[str] = Counter()

    def record(self, method: str, route: str) -> None:
        self.total += 1
        self.by_route[f"{method} {route}"] += 1

    def record_fault(self, status: int) -> None:
        self.faulted[str(status)] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "total": self.total,
            "by_route": dict(self.by_route),
            "faulted": dict(self.faulted),
        }
