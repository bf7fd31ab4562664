"""PostgreSQL advisory locks, by name.

- `advisory_xact_lock`: waits for, and holds until the transaction ends, a lock that serialises
  writers of one logical thing that has no row to lock yet (`advisory_xact_locks`: several at once).
- `session_lock`: tries (never waits for) a lock held by this database session until released.
  For long work that commits as it goes (periodic jobs, reconciliation runs, a discrepancy's
  resolve): the lock is held by the process's connection, so a process that is SIGKILLed,
  OOM-killed or stopped by a hard time limit frees it with its connection. PostgreSQL notices the
  dead client when the statement the session is running returns.
Names are hashed to the 64-bit key PostgreSQL takes. On SQLite (one writer at a time anyway) the
locks always succeed and are never held.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from django.db import DatabaseError, connection

log = structlog.get_logger("billing.locks")


def _key(name: str) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def advisory_xact_lock(name: str) -> None:
    """Waits for, then holds until the transaction ends, PostgreSQL's advisory lock named `name`."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_key(name)])


def advisory_xact_locks(names: list[str]) -> None:
    """advisory_xact_lock for each name, in the order given, in one statement.

    Callers pass the names sorted, so that two of them locking overlapping sets never deadlock.
    """
    if connection.vendor != "postgresql" or not names:
        return
    if len(names) == 1:
        advisory_xact_lock(names[0])
        return
    with connection.cursor() as cursor:
        # unnest() yields the array in order, and each row takes its lock as it is produced.
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [[_key(n) for n in names]])


@contextmanager
def session_lock(name: str) -> Iterator[bool]:
    """Yields True when this session now holds the lock `name`, False when another one does."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = _key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                # The connection broke during the work: PostgreSQL released the lock with it.
                log.warning("session_lock_release_failed", lock=name)


def session_lock_held(name: str, *, by_another_session: bool = False) -> bool:
    """Whether some session (or, with by_another_session, a session other than ours) holds `name`."""
    if connection.vendor != "postgresql":
        return False
    key = _key(name)
    # pg_locks shows a bigint key as classid (high 32 bits) and objid (low 32 bits). Advisory locks
    # belong to a database: the same name in another database on the server is another lock.
    sql = (
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s AND objid = %s AND objsubid = 1"
    )
    sql += " AND pid <> pg_backend_pid())" if by_another_session else ")"
    with connection.cursor() as cursor:
        cursor.execute(sql, [(key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF])
        return bool(cursor.fetchone()[0])
