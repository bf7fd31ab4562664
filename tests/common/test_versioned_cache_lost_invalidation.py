"""An invalidation Redis did not take is retried until it does: the old entry is not served after."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from apps.common.versioned_cache import VersionedCache
from billing_service.cache_config import redis_cache

REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = pytest.mark.skipif(
    not REDIS_URL and os.environ.get("CI") != "true", reason="needs Redis (REDIS_URL); a bare run uses local memory"
)


def _live(settings: Any) -> None:
    settings.CACHES = {"default": redis_cache(REDIS_URL, socket_timeout=0.5, key_prefix="lost-inv")}


def _dead(settings: Any) -> None:
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0", socket_timeout=0.05, key_prefix="lost-inv")}


def test_an_invalidation_lost_while_redis_was_unreachable_is_retried_once_it_answers(settings: Any) -> None:
    cache = VersionedCache(f"lost-{time.monotonic_ns()}", timeout=3600)
    _live(settings)
    _, generation = cache.get("project:1:user_1")
    cache.put("project:1:user_1", generation, {"pro": True})
    assert cache.get("project:1:user_1")[0] == {"pro": True}

    _dead(settings)  # Redis unreachable: the revoke's invalidation is lost, Redis keeps the old entry
    cache.invalidate("project:1:user_1")
    assert cache.get("project:1:user_1") == (None, None)  # readers miss and go to the database

    _live(settings)  # the same Redis answers again, still holding the old generation and entry
    deadline = time.monotonic() + 5
    while cache.get("project:1:user_1")[0] is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    value, new_generation = cache.get("project:1:user_1")
    assert value is None, "the old entry is still served after Redis came back"
    assert new_generation not in (None, generation)
