"""Reading entitlements: the cached windows of a (project, user), evaluated at an instant.

The hot path (`entitlement_check`) reads the cache only; on a miss, or with the cache down, it reads
the projection rows, which are always complete. A dead cache therefore costs latency, never a denial.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from apps.entitlements.models import Entitlement
from apps.entitlements.projection import Window, cache_ident, entitlement_cache


def _to_cached(window: Window) -> tuple[Any, ...]:
    return (
        window.feature_code,
        window.source,
        window.source_id,
        window.valid_from.timestamp(),
        window.valid_to.timestamp() if window.valid_to else None,
    )


def _from_cached(row: tuple[Any, ...]) -> Window:
    code, source, source_id, start, end = row
    return Window(
        code,
        source,
        source_id,
        dt.datetime.fromtimestamp(start, tz=dt.UTC),
        dt.datetime.fromtimestamp(end, tz=dt.UTC) if end is not None else None,
    )


def entitlement_windows(*, project_id: int, user_id: str) -> list[Window]:
    ident = cache_ident(project_id, user_id)
    cached, generation = entitlement_cache.get(ident)
    if cached is not None:
        return [_from_cached(row) for row in cached]
    windows = [
        Window(e.feature_code, e.source, e.source_id, e.valid_from, e.valid_to)
        for e in Entitlement.objects.filter(project_id=project_id, user_id=user_id)
    ]
    entitlement_cache.put(ident, generation, [_to_cached(w) for w in windows])
    return windows


def entitlement_check(
    *, project_id: int, user_id: str, feature_code: str, at: dt.datetime | None = None
) -> tuple[bool, dt.datetime | None]:
    """(active, valid_to): valid_to is the latest end among the windows active now; None means never."""
    instant = at or timezone.now()
    active = [
        w
        for w in entitlement_windows(project_id=project_id, user_id=user_id)
        if w.feature_code == feature_code and w.covers(instant)
    ]
    if not active:
        return False, None
    if any(w.valid_to is None for w in active):
        return True, None
    return True, max(w.valid_to for w in active if w.valid_to is not None)


def entitlement_list(
    *, project_id: int, user_id: str, feature_code: str | None = None, at: dt.datetime | None = None
) -> list[dict[str, Any]]:
    instant = at or timezone.now()
    windows = entitlement_windows(project_id=project_id, user_id=user_id)
    return [
        {
            "feature_code": w.feature_code,
            "active": w.covers(instant),
            "source": w.source,
            "source_id": w.source_id,
            "valid_from": w.valid_from,
            "valid_to": w.valid_to,
        }
        for w in sorted(windows, key=lambda w: (w.feature_code, w.valid_from, w.source_id))
        if feature_code is None or w.feature_code == feature_code
    ]
