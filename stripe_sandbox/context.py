"""Per-request context that event recording needs without threading it through every call.

aiohttp runs each request in its own task, so context variables set by the middleware are
visible to the (synchronous) handler and everything it calls, and to nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
idempotency_key: ContextVar[str | None] = ContextVar("idempotency_key", default=None)
# Silent changes (``/_sandbox/silent/...``) mutate state without recording events, to play
# the part of webhooks Stripe failed to deliver.
silent: ContextVar[bool] = ContextVar("silent", default=False)


@contextmanager
def automatic() -> Iterator[None]:
    """Changes made by the clock, not by an API request: events carry ``request.id = null``."""
    rid = request_id.set(None)
    key = idempotency_key.set(None)
    try:
        yield
    finally:
        request_id.reset(rid)
        idempotency_key.reset(key)


@contextmanager
def silently() -> Iterator[None]:
    token = silent.set(True)
    try:
        yield
    finally:
        silent.reset(token)
