"""Transaction-scoped advisory locks: serialise writers of one logical thing that has no row to lock yet."""

from __future__ import annotations

import hashlib

from django.db import connection


def advisory_xact_lock(name: str) -> None:
    """Waits for, then holds until the transaction ends, PostgreSQL's advisory lock named `name`.

    The name is hashed to the 64-bit key PostgreSQL takes. On SQLite this does nothing: it runs one
    writer at a time anyway.
    """
    if connection.vendor != "postgresql":
        return
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])
