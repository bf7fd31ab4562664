"""The per-user entitlement cache: whole lists, a version per user, a freshness deadline.

Entries are immutable and replaced whole under one lock, so a reader never sees half an update. The
version decides between two answers for one user: a lower one is dropped, whichever path (a fetch or
a push) brings it, because a fetch that started before a push may land after it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from billing_client.models import Entitlement

_FOREVER = float("inf")


def _windows_by_feature(entitlements: tuple[Entitlement, ...]) -> dict[str, tuple[tuple[float, float], ...]]:
    # Unix seconds rather than datetimes: has_feature compares two floats per window on the hot path.
    windows: dict[str, list[tuple[float, float]]] = {}
    for item in entitlements:
        end = _FOREVER if item.valid_to is None else item.valid_to.timestamp()
        windows.setdefault(item.feature_code, []).append((item.valid_from.timestamp(), end))
    return {code: tuple(spans) for code, spans in windows.items()}


@dataclass(frozen=True, slots=True)
class UserEntitlements:
    """A user's whole entitlement list as the service last told it, and until when it is fresh."""

    entitlements: tuple[Entitlement, ...]
    version: int
    fresh_until: float  # time.monotonic() deadline
    windows: Mapping[str, tuple[tuple[float, float], ...]]
    # False once invalidate() was called: the version still orders later answers, the list is not served.
    trusted: bool = True
    # Bumped by invalidate(): a fetch that started under an older generation is not stored.
    generation: int = 0

    @classmethod
    def build(
        cls, entitlements: tuple[Entitlement, ...], version: int, fresh_until: float, generation: int
    ) -> UserEntitlements:
        return cls(entitlements, version, fresh_until, _windows_by_feature(entitlements), True, generation)

    def has(self, feature_code: str, now: float) -> bool:
        """Whether a window of the feature covers `now` (Unix seconds): computed at the call, not cached."""
        # A plain loop, not any(<generator>): this is the hot path, and the generator costs more than the test.
        for start, end in self.windows.get(feature_code, ()):  # noqa: SIM110
            if start <= now < end:
                return True
        return False

    def current(self) -> list[Entitlement]:
        """The list with `active` as of now (an entitlement may have started or ended since it was fetched)."""
        now = datetime.now(UTC)
        return [
            item if item.active == (active := item.is_active_at(now)) else _with_active(item, active)
            for item in self.entitlements
        ]


def _with_active(item: Entitlement, active: bool) -> Entitlement:
    return Entitlement(item.feature_code, active, item.source, item.source_id, item.valid_from, item.valid_to)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken before a fetch: the answer is stored only if the user was not invalidated meanwhile."""

    user_id: str
    generation: int


class EntitlementCache:
    def __init__(self, *, ttl: float, max_users: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max_users = max_users
        self._clock = clock
        self._lock = threading.Lock()
        # Insertion order is store order: the first key is the user stored longest ago (evicted first).
        self._entries: dict[str, UserEntitlements] = {}

    def fresh(self, user_id: str) -> UserEntitlements | None:
        with self._lock:
            entry = self._entries.get(user_id)
        if entry is None or not entry.trusted or entry.fresh_until <= self._clock():
            return None
        return entry

    def last_known(self, user_id: str) -> UserEntitlements | None:
        """The cached list however old it is; None when nothing trustworthy is cached."""
        with self._lock:
            entry = self._entries.get(user_id)
        return entry if entry is not None and entry.trusted else None

    def ticket(self, user_id: str) -> Ticket:
        with self._lock:
            return Ticket(user_id, self._generation(user_id))

    def store_fetched(self, ticket: Ticket, entitlements: tuple[Entitlement, ...], version: int) -> UserEntitlements:
        """Store a fetched answer unless a newer version is cached or the user was invalidated since the
        ticket; an equal version refreshes the entry. Returns the entry to answer from."""
        fetched = UserEntitlements.build(entitlements, version, self._clock() + self._ttl, ticket.generation)
        with self._lock:
            if self._generation(ticket.user_id) != ticket.generation:
                return fetched
            current = self._entries.get(ticket.user_id)
            if current is not None and current.version > version:
                return current if current.trusted else fetched
            if current is not None and current.trusted and version > 0 and current.version == version:
                # Same version, same projection: keep the list (a push of this version is the
                # authority) and only extend its freshness. A fetch that raced the service's cache
                # invalidation could otherwise put an older list back under this version. (Version 0
                # is "never changed since versions exist": such lists are replaced.)
                fetched = UserEntitlements.build(current.entitlements, version, fetched.fresh_until, current.generation)
            self._put(ticket.user_id, fetched)
        return fetched

    def store_pushed(self, user_id: str, entitlements: tuple[Entitlement, ...], version: int) -> bool:
        """Store a pushed answer unless a newer version is cached; True when stored.

        An equal version is stored too: the push is the service's own record of that version, while a
        fetch of the same version may have read the service's cache just before it was invalidated.
        Redeliveries of one notification are dropped earlier, by id.
        """
        with self._lock:
            current = self._entries.get(user_id)
            if current is not None and current.version > version:
                return False
            generation = 0 if current is None else current.generation
            self._put(user_id, UserEntitlements.build(entitlements, version, self._clock() + self._ttl, generation))
        return True

    def invalidate(self, user_id: str) -> None:
        """Stop serving the user's list; its version is kept to order the answers still to come."""
        with self._lock:
            current = self._entries.get(user_id)
            # A user never cached gets a placeholder (version -1: any answer is newer) that carries the
            # generation, so that a fetch already in flight for them is not stored either.
            entitlements, version, windows = (
                ((), -1, {}) if current is None else (current.entitlements, current.version, current.windows)
            )
            generation = self._generation(user_id) + 1
            self._put(user_id, UserEntitlements(entitlements, version, 0.0, windows, False, generation))

    def _generation(self, user_id: str) -> int:
        current = self._entries.get(user_id)
        return 0 if current is None else current.generation

    def _put(self, user_id: str, entry: UserEntitlements) -> None:
        # Bounded: an evicted user's next answer is fetched again (and any fetch in flight for them, whose
        # generation no longer matches once they are evicted after an invalidation, is not stored).
        self._entries.pop(user_id, None)
        self._entries[user_id] = entry
        while len(self._entries) > self._max_users:
            del self._entries[next(iter(self._entries))]
