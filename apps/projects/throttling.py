from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from apps.projects.selectors import ApiClient

if TYPE_CHECKING:
    # Only for annotations: DRF's views import these classes through its settings (a cycle).
    from rest_framework.views import APIView


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
        key = f"throttle:{client.key_id}:{window}"
        self.cache.add(key, 0, timeout=period + 1)
        try:
            count = self.cache.incr(key)
        except ValueError:
            return True  # the window expired between add and incr; the next request starts afresh
        if count is not None and count > limit:
            self._wait = (window + 1) * period - now
            return False
        return True

    def wait(self) -> float:
        return float(math.ceil(self._wait))
