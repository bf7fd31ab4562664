"""One run of a job at a time, across every worker and host: a PostgreSQL session advisory lock.

Session-level (not transaction-level) because the job's body commits as it goes; a worker that
dies frees it with its connection (apps/common/locks.py). A job body that writes inside a
transaction never commits after its worker is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apps.common.locks import session_lock, session_lock_held


@contextmanager
def job_lock(job: str) -> Iterator[bool]:
    """Yields True when this process now holds `job`'s lock, False when another one does."""
    with session_lock(f"job:{job}") as acquired:
        yield acquired


def job_lock_held(job: str) -> bool:
    """Whether some session holds `job`'s lock now (for the health endpoint and the admin)."""
    return session_lock_held(f"job:{job}")
