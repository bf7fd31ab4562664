from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django_redis.cache import RedisCache as DjangoRedisCache
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from apps.projects.selectors import ApiClient

if TYPE_CHECKING:
    # Only for annotations: DRF's views import these classes through its settings (a cycle).
    from rest_framework.views import APIView


def _raw_redis() -> Any | None:
    """The redis-py client behind the default cache when it is django-redis, else None."""
    backend = caches["default"]  # the backend itself: `cache` is a proxy to it
    if not isinstance(backend, DjangoRedisCache):
        return None
    return backend.client.get_client(write=True)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """A per-key limit (the app's `rate_limit`, else API_RATE_LIMIT), answered as 429 with Retry-After.

    DRF's stock algorithm keeps every request timestamp in one cache value and rewrites it on each
    call, which grows with the rate; a fixed-window counter costs one atomic increment instead.
    """

    scope = "api_key"

    def __init__(self) -> None:
        self._default_rate = self.get_rate()
        self._wait = 0.0

    def allow_request(self, request: Request, view: APIView) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return True  # authentication already rejected the request
        limit, period = self.parse_rate(client.rate_limit or self._default_rate)
        if limit is None or period is None:
            return True
        now = self.timer()
        window = int(now // period)
        count = self._count(f"throttle:{client.key_id}:{window}", period)
        if count is not None and count > limit:
            self._wait = (window + 1) * period - now
            return False
        return True

    def _count(self, key: str, period: int) -> int | None:
        """This window's count after this request; None when the cache cannot tell (fail open)."""
        raw = _raw_redis()
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
        self.cache.add(key, 0, timeout=period + 1)
        try:
            count = self.cache.incr(key)
        except ValueError:
            return None  # the window expired between add and incr; the next request starts afresh
        return int(count) if count is not None else None

    def wait(self) -> float:
        return float(math.ceil(self._wait))
