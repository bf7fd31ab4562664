from __future__ import annotations

from typing import Any


def redis_cache(url: str, *, socket_timeout: float, key_prefix: str) -> dict[str, Any]:
    """The Redis cache as the service uses it (settings, and tests that point it at a dead port)."""
    return {
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": key_prefix,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            # Short timeouts: a dead Redis must cost a request milliseconds, not seconds.
            "SOCKET_CONNECT_TIMEOUT": socket_timeout,
            "SOCKET_TIMEOUT": socket_timeout,
            # Callers treat the cache as an optimisation and fall back to the database,
            # so an unreachable Redis degrades to misses instead of 500s.
            "IGNORE_EXCEPTIONS": True,
        },
    }
