"""Reads: the cached entitlement windows of a (project, user) evaluated at an instant, and the
project's metrics (subscription counts, revenue totals).

The hot path (`entitlement_check`) reads the cache only; on a miss, or with the cache down, it reads
the projection rows, which are always complete. A dead cache therefore costs latency, never a denial.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypedDict

from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.entitlements.models import Entitlement, EntitlementVersion, RevenueEntry, SubscriptionRecord
from apps.entitlements.projection import ENTITLING_STATUSES, Window, cache_ident, entitlement_cache


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


def entitlement_windows(*, project_id: int, user_id: str, generation: str | None = None) -> list[Window]:
    """`generation`: the cache generation the caller has just read for this user (the check reads it
    in its one round trip); without it, it is read here."""
    ident = cache_ident(project_id, user_id)
    if generation is None:
        cached, generation = entitlement_cache.get(ident)
    else:
        cached = entitlement_cache.get_under(ident, generation)
    if cached is not None:
        return [_from_cached(row) for row in cached]
    windows = [
        Window(e.feature_code, e.source, e.source_id, e.valid_from, e.valid_to)
        for e in Entitlement.objects.filter(project_id=project_id, user_id=user_id)
    ]
    entitlement_cache.put(ident, generation, [_to_cached(w) for w in windows])
    return windows


def entitlement_check(
    *,
    project_id: int,
    user_id: str,
    feature_code: str,
    at: dt.datetime | None = None,
    generation: str | None = None,
) -> tuple[bool, dt.datetime | None]:
    """(active, valid_to): valid_to is the latest end among the windows active now; None means never."""
    instant = at or timezone.now()
    active = [
        w
        for w in entitlement_windows(project_id=project_id, user_id=user_id, generation=generation)
        if w.feature_code == feature_code and w.covers(instant)
    ]
    if not active:
        return False, None
    if any(w.valid_to is None for w in active):
        return True, None
    return True, max(w.valid_to for w in active if w.valid_to is not None)


def entitlement_version(*, project_id: int, user_id: str) -> int:
    """The user's entitlements version (0 before their first change); see apps.entitlements.notifications."""
    row = EntitlementVersion.objects.filter(project_id=project_id, user_id=user_id)
    return next(iter(row.values_list("version", flat=True)), 0)


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


class SubscriptionCounts(TypedDict):
    active_subscriptions: int
    by_status: dict[str, int]
    by_price: dict[str, int]


def subscription_counts(*, project_id: int) -> SubscriptionCounts:
    """The project's subscriptions by status; active (or trialing) ones in all and per price."""
    records = SubscriptionRecord.objects.filter(project_id=project_id)
    by_status = dict(records.values_list("status").annotate(n=Count("id")).order_by("status"))
    by_price: dict[str, int] = {}
    for price_ids in records.filter(status__in=ENTITLING_STATUSES).values_list("price_ids", flat=True):
        for price_id in price_ids:
            by_price[price_id] = by_price.get(price_id, 0) + 1
    active = sum(count for state, count in by_status.items() if state in ENTITLING_STATUSES)
    return {"active_subscriptions": active, "by_status": by_status, "by_price": by_price}


class RevenueTotal(TypedDict):
    currency: str
    gross: int
    refunded: int
    net: int


def revenue_totals(
    *, project_id: int, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> list[RevenueTotal]:
    """Payments, refunds and their difference per currency, in minor units, from `start` (inclusive)
    to `end` (exclusive); either bound may be left open."""
    entries = RevenueEntry.objects.filter(project_id=project_id)
    if start is not None:
        entries = entries.filter(occurred_at__gte=start)
    if end is not None:
        entries = entries.filter(occurred_at__lt=end)
    totals = (
        entries.values("currency")
        .annotate(
            gross=Sum("amount", filter=Q(kind=RevenueEntry.Kind.PAYMENT), default=0),
            refunded=Sum("amount", filter=Q(kind=RevenueEntry.Kind.REFUND), default=0),
        )
        .order_by("currency")
    )
    return [
        {"currency": t["currency"], "gross": t["gross"], "refunded": t["refunded"], "net": t["gross"] - t["refunded"]}
        for t in totals
    ]
