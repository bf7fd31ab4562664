"""A cache namespace whose entries are invalidated by changing a generation token.

The race this prevents: a reader misses, reads the database, and is about to fill the cache when a
writer commits a change and deletes the entry; the reader's fill then puts the old answer back for a
whole TTL. Here a reader fills the entry under the generation it read *before* going to the database.
An invalidation replaces the generation, so a late fill lands under a generation nobody reads again.

Generations are random tokens, never reused (a missing one is created with add()), so an entry under a
given generation never changes. Each process therefore keeps entries it has read in a small local memo
keyed by (ident, generation): a warm read costs one round trip, for the generation, instead of two.

The entitlement check reads its generations in one pipelined round trip with its throttle increment
(apps/entitlements/api_check.py): `generation_key` names what to read, `get_under` answers for a
generation read that way, and `latest` is the last value this process saw for an ident, whatever its
generation, which the check uses only to know what to read, never as an answer.

When the cache is unreachable (django-redis with IGNORE_EXCEPTIONS), reads miss and writes do nothing:
callers read the database and stay correct, and nothing is memoised without a known generation.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

import structlog
from django.core.cache import cache, caches
from django_redis.cache import RedisCache

log = structlog.get_logger("billing.cache")

_MEMO_SIZE = 10_000
_RETRY_SECONDS = 1.0


class VersionedCache:
    def __init__(self, namespace: str, timeout: int) -> None:
        self.namespace = namespace
        self.timeout = timeout
        self._memo: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        # ident -> the last value remembered for it (any generation): a hint, never an answer.
        self._latest: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        # Invalidations Redis did not take: ident -> until when retrying still matters (monotonic).
        self._lost: dict[str, float] = {}
        self._retrying = False

    def _generation_key(self, ident: str) -> str:
        return f"{self.namespace}:gen:{ident}"

    def generation_key(self, ident: str) -> str:
        """The cache key (before the backend's prefix) holding the ident's generation."""
        return self._generation_key(ident)

    def _entry_key(self, ident: str, generation: str) -> str:
        return f"{self.namespace}:{generation}:{ident}"

    def generation(self, ident: str) -> str | None:
        """The current generation; created if missing. None when the cache does not answer."""
        key = self._generation_key(ident)
        value = cache.get(key)
        if value is None:
            cache.add(key, uuid.uuid4().hex, timeout=None)
            value = cache.get(key)
        return str(value) if value is not None else None

    def get(self, ident: str) -> tuple[Any | None, str | None]:
        """(cached value or None, the generation to fill under after a miss)."""
        generation = self.generation(ident)
        if generation is None:
            return None, None
        return self.get_under(ident, generation), generation

    def get_under(self, ident: str, generation: str) -> Any | None:
        """The entry under a generation just read from the cache: from the memo, else one round trip."""
        memo_key = (ident, generation)
        with self._lock:
            remembered = self._memo.get(memo_key)
            if remembered is not None and remembered[0] > time.time():
                self._memo.move_to_end(memo_key)
                return remembered[1]
        value = cache.get(self._entry_key(ident, generation))
        if value is not None:
            self._remember(memo_key, value)
        return value

    def latest(self, ident: str) -> Any | None:
        """The last value this process remembered for the ident, of any generation: a hint only."""
        with self._lock:
            return self._latest.get(ident)

    def put(self, ident: str, generation: str | None, value: Any) -> None:
        if generation is None:
            return  # no generation was readable: nothing can be filled safely
        cache.set(self._entry_key(ident, generation), value, timeout=self.timeout)
        self._remember((ident, generation), value)

    def _remember(self, memo_key: tuple[str, str], value: Any) -> None:
        # The memo honours the same TTL as the shared entry: with a per-process cache (no Redis),
        # the TTL is what bounds how long another process's invalidation goes unseen.
        with self._lock:
            self._memo[memo_key] = (time.time() + self.timeout, value)
            self._memo.move_to_end(memo_key)
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
            self._latest[memo_key[0]] = value
            self._latest.move_to_end(memo_key[0])
            while len(self._latest) > _MEMO_SIZE:
                self._latest.popitem(last=False)

    def invalidate(self, ident: str) -> None:
        if not self._invalidate_once(ident):
            self._retry_later(ident)

    def _invalidate_once(self, ident: str) -> bool:
        """Replaces the ident's generation; False when the cache did not take it (Redis unreachable)."""
        key = self._generation_key(ident)
        old = cache.get(key)
        if old is not None:
            cache.delete(self._entry_key(ident, str(old)))
        backend: Any = caches["default"]
        stored = backend.set(key, uuid.uuid4().hex, timeout=None)
        # django-redis answers True once stored, and None when IGNORE_EXCEPTIONS swallowed an error;
        # other backends (local memory) answer None and cannot fail this way.
        return stored is True or not isinstance(backend, RedisCache)

    def _retry_later(self, ident: str) -> None:
        """Keeps retrying a lost invalidation in the background until Redis takes it.

        Readers answer from the database while Redis is down, but a Redis that was only unreachable
        (or restarted from a snapshot) still holds the old generation and its entry: it would serve
        them for up to `timeout` once it answers again. Retrying every second closes that window to
        about a second after Redis is back; past `timeout` the old entry has expired anyway. (A
        memory-only cache Redis, as docker-compose.yml ships, comes back empty after a restart.)
        """
        log.warning("cache_invalidation_lost", namespace=self.namespace, ident=ident)
        with self._lock:
            self._lost[ident] = time.monotonic() + self.timeout
            if self._retrying:
                return
            self._retrying = True
        threading.Thread(target=self._retry_loop, name=f"{self.namespace}-invalidations", daemon=True).start()

    def _retry_loop(self) -> None:
        while True:
            time.sleep(_RETRY_SECONDS)
            with self._lock:
                now = time.monotonic()
                pending = [ident for ident, until in self._lost.items() if until > now]
                self._lost = {ident: self._lost[ident] for ident in pending}
                if not pending:
                    self._retrying = False
                    return
            for ident in pending:
                if self._invalidate_once(ident):
                    with self._lock:
                        self._lost.pop(ident, None)
                    log.info("cache_invalidation_retried", namespace=self.namespace, ident=ident)
