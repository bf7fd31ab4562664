"""One run of a job at a time, across every worker and host: a PostgreSQL session advisory lock.

Session-level (not transaction-level) because the job's body commits as it goes. It is held by the
worker's database connection, so a worker that is SIGKILLed, OOM-killed or stopped by the hard
time limit (the job's timeout) loses its connection and with it the lock: nothing needs to expire
it by hand. (PostgreSQL notices the dead client when the statement the session is running returns;
a job body that writes inside a transaction never commits after its worker is gone.)
On SQLite (a single-process development setup) the lock always succeeds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from django.db import DatabaseError, connection

log = structlog.get_logger("billing.jobs")


def _key(name: str) -> int:
    digest = hashlib.blake2b(f"job:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def job_lock(job: str) -> Iterator[bool]:
    """Yields True when this process now holds `job`'s lock, False when another one does."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = _key(job)
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
                # The connection broke during the job: PostgreSQL already released the lock with it.
                log.warning("job_lock_release_failed", job=job)


def job_lock_held(job: str) -> bool:
    """Whether some session holds `job`'s lock now (for the health endpoint and the admin)."""
    if connection.vendor != "postgresql":
        return False
    key = _key(job)
    with connection.cursor() as cursor:
        # pg_locks shows a bigint key as classid (high 32 bits) and objid (low 32 bits).
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s AND objid = %s AND objsubid = 1)",
            [(key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF],
        )
        return bool(cursor.fetchone()[0])
