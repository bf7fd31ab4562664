"""Records every HTTP request the Stripe SDK makes, with the transactions open at that moment.

Issue 9, point 1: no Stripe call inside a transaction of ours. The SDK's HTTP client is patched at
its lowest level (`stripe.RequestsClient.request`), which both our gateway's client and dj-stripe's
global one go through. Every `transaction.atomic()` entered is tagged with the module that opened
it, so that a test can tell ours (`apps.*`) from dj-stripe's own (its mirror fetches related objects
inside a transaction of its own, which we cannot change and do not nest in ours).

Use it in `django_db(transaction=True)` tests: otherwise the test's own transaction is always open.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import stripe
from django.db import connection, transaction

_local = threading.local()


def _openers() -> list[str]:
    stack: list[str] | None = getattr(_local, "openers", None)
    if stack is None:
        stack = _local.openers = []
    return stack


def _caller_module() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        name = str(frame.f_globals.get("__name__", ""))
        if not name.startswith(("django.", "contextlib")) and name != __name__:
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


@dataclass(frozen=True)
class StripeRequest:
    method: str
    url: str
    in_atomic_block: bool
    openers: tuple[str, ...]  # the modules that opened the transactions (and savepoints) open now
    by_djstripe: bool  # made by dj-stripe's own code (its mirror fetching a related object)

    @property
    def inside_ours(self) -> bool:
        return any(opener.startswith("apps.") for opener in self.openers)


@dataclass
class StripeRequests:
    seen: list[StripeRequest] = field(default_factory=list)

    def assert_none_inside_our_transactions(self) -> None:
        assert self.seen, "no Stripe request was made: the test proves nothing"
        inside = [request for request in self.seen if request.inside_ours]
        assert not inside, f"Stripe called inside a transaction of ours: {inside}"
        # Our gateway's own calls: no transaction at all, not even one of dj-stripe's.
        ours = [request for request in self.seen if not request.by_djstripe and request.in_atomic_block]
        assert not ours, f"a gateway call inside a transaction: {ours}"


@pytest.fixture
def stripe_requests(monkeypatch: pytest.MonkeyPatch) -> StripeRequests:
    recorded = StripeRequests()
    real_request = stripe.RequestsClient.request
    real_enter = transaction.Atomic.__enter__
    real_exit = transaction.Atomic.__exit__

    def request(self: Any, method: str, url: str, headers: Any, post_data: Any = None) -> Any:
        frames = sys._getframe(1)
        by_djstripe = False
        while frames is not None:
            if str(frames.f_globals.get("__name__", "")).startswith("djstripe."):
                by_djstripe = True
                break
            frames = frames.f_back  # type: ignore[assignment]
        recorded.seen.append(
            StripeRequest(method, url, connection.in_atomic_block, tuple(_openers()), by_djstripe=by_djstripe)
        )
        return real_request(self, method, url, headers, post_data)

    def enter(self: Any) -> None:
        opener = _caller_module()
        real_enter(self)
        _openers().append(opener)  # only once entered: a failed enter is never exited

    def exit(self: Any, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        try:
            real_exit(self, exc_type, exc_value, traceback)
        finally:
            _openers().pop()

    monkeypatch.setattr(stripe.RequestsClient, "request", request)
    monkeypatch.setattr(transaction.Atomic, "__enter__", enter)
    monkeypatch.setattr(transaction.Atomic, "__exit__", exit)
    return recorded
