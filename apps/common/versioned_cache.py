"""A cache namespace whose entries are invalidated by changing a generation token.

The race this prevents: a reader misses, reads the database, and is about to fill the cache when a
writer commits a change and deletes the entry; the reader's fill then puts the old answer back for a
whole TTL. Here a reader fills the entry under the generation it read *before* going to the database.
An invalidation replaces the generation, so a late fill lands under a generation nobody reads again.

Generations are random tokens, never reused (a missing one is created with add()), so an entry under a
given generation never changes. Each process therefore keeps entries it has read in a small local memo
keyed by (ident, generation): a warm read costs one round trip, for the generation, instead of two.

When the cache is unreachable (django-redis with IGNORE_EXCEPTIONS), reads miss and writes do nothing:
callers read the database and stay correct, and nothing is memoised without a known generation.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from django.core.cache import cache

_MEMO_SIZE = 10_000


class VersionedCache:
    def __init__(self, namespace: str, timeout: int) -> None:
        self.namespace = namespace
        self.timeout = timeout
        self._memo: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _generation_key(self, ident: str) -> str:
        return f"{self.namespace}:gen:{ident}"

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
        memo_key = (ident, generation)
        with self._lock:
            remembered = self._memo.get(memo_key)
            if remembered is not None and remembered[0] > time.time():
                self._memo.move_to_end(memo_key)
                return remembered[1], generation
        value = cache.get(self._entry_key(ident, generation))
        if value is not None:
            self._remember(memo_key, value)
        return value, generation

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

    def invalidate(self, ident: str) -> None:
        key = self._generation_key(ident)
        old = cache.get(key)
        if old is not None:
            cache.delete(self._entry_key(ident, str(old)))
        cache.set(key, uuid.uuid4().hex, timeout=None)
