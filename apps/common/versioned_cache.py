"""A cache namespace whose entries are invalidated by changing a generation token.

The race this prevents: a reader misses, reads the database, and is about to fill the cache when a
writer commits a change and deletes the entry; the reader's fill then puts the old answer back for a
whole TTL. Here a reader fills the entry under the generation it read *before* going to the database.
An invalidation replaces the generation, so a late fill lands under a generation nobody reads again.

When the cache is unreachable (django-redis with IGNORE_EXCEPTIONS), `get` returns a miss and `put`
does nothing: callers read the database and stay correct.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.cache import cache

_INITIAL = "0"


class VersionedCache:
    def __init__(self, namespace: str, timeout: int) -> None:
        self.namespace = namespace
        self.timeout = timeout

    def _generation_key(self, ident: str) -> str:
        return f"{self.namespace}:gen:{ident}"

    def _entry_key(self, ident: str, generation: str) -> str:
        return f"{self.namespace}:{generation}:{ident}"

    def generation(self, ident: str) -> str:
        value = cache.get(self._generation_key(ident))
        return str(value) if value is not None else _INITIAL

    def get(self, ident: str) -> tuple[Any | None, str]:
        """(cached value or None, the generation to fill under after a miss)."""
        generation = self.generation(ident)
        return cache.get(self._entry_key(ident, generation)), generation

    def put(self, ident: str, generation: str, value: Any) -> None:
        cache.set(self._entry_key(ident, generation), value, timeout=self.timeout)

    def invalidate(self, ident: str) -> None:
        old = self.generation(ident)
        # The initial generation is the only one that can come back (if the generation key is
        # evicted), so its entry is dropped too.
        cache.delete_many([self._entry_key(ident, old), self._entry_key(ident, _INITIAL)])
        cache.set(self._generation_key(ident), uuid.uuid4().hex, timeout=None)
