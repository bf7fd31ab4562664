from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.http import HttpRequest
from django_redis.cache import RedisCache as DjangoRedisCache
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from apps.projects.selectors import ApiClient

if TYPE_CHECKING:
    # Only for annotations: DRF's views import these classes through its settings (a cycle).
    from rest_framework.views import APIView

# Set on the Django request by a path that already counted this request (the entitlement check's
# one round trip), so that the DRF throttle it may hand the request to does not count it twice.
COUNTED_ATTR = "_api_key_throttle_counted"


def raw_redis() -> Any | None:
    """The redis-py client behind the default cache when it is django-redis, else None."""
    backend = caches["default"]  # the backend itself: `cache` is a proxy to it
    if not isinstance(backend, DjangoRedisCache):
        return None
    return backend.client.get_client(write=True)


@dataclass(frozen=True)
class ThrottleWindow:
    """The fixed window a request of one key falls in: its counter's cache key and the limit."""

    key: str  # before the cache backend's prefix
    limit: int
    period: int
    ends_at: float

    def allows(self, count: int | None) -> bool:
        """Whether this window's count after this request is within the limit (None: fail open)."""
        return count is None or count <= self.limit

    def wait(self, now: float) -> float:
        return float(math.ceil(self.ends_at - now))


class ApiKeyRateThrottle(SimpleRateThrottle):
    """A per-key limit (the app's `rate_limit`, else API_RATE_LIMIT), answered as 429 with Retry-After.

    DRF's stock algorithm keeps every request timestamp in one cache value and rewrites it on each
    call, which grows with the rate; a fixed-window counter costs one atomic increment instead.
    """

    scope = "api_key"

    def __init__(self) -> None:
        self._default_rate = self.get_rate()
        self._wait = 0.0

    def window_for(self, client: ApiClient, now: float) -> ThrottleWindow | None:
        """The window `client` counts in at `now`; None when no limit applies. The one rule, shared
        by allow_request and the entitlement check's own path (apps/entitlements/api_check.py)."""
        limit, period = self.parse_rate(client.rate_limit or self._default_rate)
        if limit is None or period is None:
            return None
        window = int(now // period)
        return ThrottleWindow(f"throttle:{client.key_id}:{window}", limit, period, (window + 1) * period)

    def allow_request(self, request: Request, view: APIView) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return True  # authentication already rejected the request
        now = self.timer()
        window = self.window_for(client, now)
        if window is None:
            return True
        counted = getattr(request._request, COUNTED_ATTR, None)
        if counted is not None and counted[0] == window.key:
            count: int | None = counted[1]  # counted already, in the check's round trip
        else:
            count = self._count(window.key, window.period)
        if not window.allows(count):
            self._wait = window.wait(now)
            return False
        return True

    def _count(self, key: str, period: int) -> int | None:
        """This window's count after this request; None when the cache cannot tell (fail open)."""
        raw = raw_redis()
        if raw is not None:
            # One round trip on the hot path: INCR and EXPIRE pipelined, instead of add() + incr().
            full_key = self.cache.make_key(key)
            try:
                pipe = raw.pipeline(transaction=False)
                pipe.incr(full_key)
                pipe.expire(full_key, period + 1)
                count, _ = pipe.execute()
            except RedisError:
                return None
            return int(count)
        return local_count(key, period)

    def wait(self) -> float:
        return float(math.ceil(self._wait))


def local_count(key: str, period: int) -> int | None:
    """The count after this request through the cache API, for a cache that is not django-redis."""
    cache = ApiKeyRateThrottle.cache
    cache.add(key, 0, timeout=period + 1)
    try:
        count = cache.incr(key)
    except ValueError:
        return None  # the window expired between add and incr; the next request starts afresh
    return int(count) if count is not None else None


def mark_counted(request: HttpRequest, window: ThrottleWindow, count: int | None) -> None:
    """Records on the request that it was counted in `window` already (see COUNTED_ATTR)."""
    setattr(request, COUNTED_ATTR, (window.key, count))
