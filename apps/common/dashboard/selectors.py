"""Reads for the admin dashboard: one function per panel, each one or a few aggregate queries.

Nothing here loops over rows in Python: the database groups and sums, and Python only reshapes the
few groups it gets back (days, weeks, statuses, currencies). Money stays in integer minor units.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, Min, OuterRef, Q, Sum
from django.db.models.functions import TruncDate

from apps.checkout.models import CheckoutSession, Invoice
from apps.entitlements.models import RevenueEntry, SubscriptionRecord
from apps.projects.models import Project
from apps.reconciliation.models import Discrepancy, ReconciliationRun
from apps.recovery.models import RecoveryAttempt
from apps.webhooks.models import ProcessorEvent

PERIODS = (30, 90, 365)
DEFAULT_PERIOD = 30

# Counted in MRR: still billed. past_due is owed and not yet lost (Stripe counts it too); trialing
# has not paid anything yet, so it is not revenue.
MRR_STATUSES = ("active", "past_due")
# Stripe's end states: such a subscription is churned, not "active" under any status.
ENDED_STATUSES = ("canceled", "incomplete_expired", "")

# A price's amount per month, as an exact factor per interval (before dividing by interval_count):
# a week is 52/12 of a month (Stripe's own MRR convention), a day 365/12.
MONTH_FACTOR: dict[str, Fraction] = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "year": Fraction(1, 12),
}

UNPROCESSED = (ProcessorEvent.Status.RECEIVED, ProcessorEvent.Status.PROCESSING, ProcessorEvent.Status.FAILED)


@dataclass(frozen=True)
class Scope:
    """The picker's choice: one project and a period ending now."""

    project: Project
    days: int
    now: dt.datetime

    @property
    def since(self) -> dt.datetime:
        return self.now - dt.timedelta(days=self.days)


def planner_for_reports() -> None:
    """Turns PostgreSQL's JIT off for the rest of the caller's transaction.

    These aggregates scan many rows, so their estimated cost crosses jit_above_cost, and compiling
    them took ~120 ms of an ~850 ms MRR query in the benchmark, more than it saved. SET LOCAL: the
    setting ends with the transaction and never leaks into a pooled connection's next request.
    """
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def project_choices() -> list[dict[str, Any]]:
    return [dict(row) for row in Project.objects.order_by("slug").values("id", "slug", "name")]


# One MRR group: (interval, interval_count, amount x quantity summed, items).
MrrGroup = tuple[str, int, int, int]


def mrr_normalise(groups: list[MrrGroup]) -> int:
    """One currency's MRR from its (interval, interval_count, amount x quantity summed, items) groups.

    The exact rational sum of every item's monthly amount, rounded once, half to even, to an integer
    minor unit: three quarterly items of 1000 are 1000 a month, not 3 x 333. (Python's round() of a
    Fraction rounds half to even.)
    """
    total = sum(
        (
            Fraction(amount) * MONTH_FACTOR[interval] / (count if count > 0 else 1)
            for interval, count, amount, _ in groups
        ),
        Fraction(0),
    )
    return round(total)


_MRR_SQL = """
SELECT item->>'currency',
       item->>'interval',
       COALESCE((item->>'interval_count')::integer, 1),
       SUM((item->>'unit_amount')::numeric * COALESCE((item->>'quantity')::numeric, 1)),
       COUNT(*)
FROM {table} AS s
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(s.items) = 'array' THEN s.items ELSE '[]'::jsonb END
) AS item
WHERE s.project_id = %s AND s.status = ANY(%s)
  AND item->>'unit_amount' IS NOT NULL
  AND item->>'interval' = ANY(%s)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""


def mrr_by_currency(scope: Scope) -> list[dict[str, Any]]:
    """MRR per currency from the items of the project's billed subscriptions (one query).

    The source is each subscription's own snapshot, through `SubscriptionRecord.items` (the snapshot's
    `items.data[]` narrowed to the price Stripe bills it at: `unit_amount`, `currency`, `interval`,
    `interval_count`, and the item's `quantity`), so a price edited later in the catalog does not rewrite
    what existing subscriptions pay. The narrow column, not `stripe_data`: reaching into the whole
    snapshot cost ~1.5 s at 100,000 subscriptions. Items without a fixed `unit_amount` (tiered or
    metered prices) are not counted.
    """
    rows = _mrr_rows(scope) if connection.vendor == "postgresql" else _mrr_rows_without_postgresql(scope)
    per_currency: dict[str, list[MrrGroup]] = {}
    for currency, interval, count, amount, items in rows:  # groups, not rows: (currency, interval, count)
        per_currency.setdefault(str(currency).lower(), []).append((str(interval), int(count), int(amount), int(items)))
    return [
        {"currency": currency, "mrr": mrr_normalise(groups), "items": sum(g[3] for g in groups)}
        for currency, groups in sorted(per_currency.items())
    ]


def _mrr_rows(scope: Scope) -> list[tuple[Any, ...]]:
    sql = _MRR_SQL.format(table=connection.ops.quote_name(SubscriptionRecord._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql, [scope.project.pk, list(MRR_STATUSES), list(MONTH_FACTOR)])
        return list(cursor.fetchall())


def _mrr_rows_without_postgresql(scope: Scope) -> list[tuple[Any, ...]]:
    """The same groups as _MRR_SQL, summed in Python: SQLite (`make run`, a bare `make test`) has no
    jsonb. A development database holds a handful of subscriptions; production is PostgreSQL."""
    groups: dict[tuple[str, str, int], list[int]] = {}
    records = SubscriptionRecord.objects.filter(project=scope.project, status__in=MRR_STATUSES)
    for items in records.values_list("items", flat=True):
        for item in items if isinstance(items, list) else []:
            if item.get("unit_amount") is None or item.get("interval") not in MONTH_FACTOR:
                continue
            key = (str(item.get("currency")), str(item["interval"]), int(item.get("interval_count") or 1))
            total = groups.setdefault(key, [0, 0])
            total[0] += int(item["unit_amount"]) * int(item.get("quantity") or 1)
            total[1] += 1
    return [(*key, amount, count) for key, (amount, count) in sorted(groups.items())]


def subscriptions_by_status(scope: Scope) -> list[dict[str, Any]]:
    """Subscriptions not ended, counted per status (now, not over the period)."""
    return list(
        SubscriptionRecord.objects.filter(project=scope.project)
        .exclude(status__in=ENDED_STATUSES)
        .values("status")
        .annotate(count=Count("id"))
        .order_by("status")
    )


_WEEKS_SQL = """
SELECT e.kind, date_trunc('week', e.at AT TIME ZONE 'UTC')::date, COUNT(*)
FROM {table} AS s
CROSS JOIN LATERAL (VALUES ('new', s.created_at), ('churned', s.ended_at)) AS e(kind, at)
WHERE s.project_id = %s AND (s.created_at >= %s OR s.ended_at >= %s) AND e.at >= %s
GROUP BY 1, 2
"""


def subscriptions_per_week(scope: Scope) -> list[dict[str, Any]]:
    """New (our record created) and churned (Stripe's ended_at) subscriptions per ISO week (Monday, UTC).

    One pass over the project's subscriptions for both counts (there is no index on either date).
    """
    rows = _week_rows(scope) if connection.vendor == "postgresql" else _week_rows_without_postgresql(scope)
    weeks: dict[dt.date, dict[str, Any]] = {}
    for kind, week, count in rows:  # groups: (kind, week)
        weeks.setdefault(week, {"week": week, "new": 0, "churned": 0})[kind] = count
    return [weeks[week] for week in sorted(weeks)]


def _week_rows(scope: Scope) -> list[tuple[Any, ...]]:
    sql = _WEEKS_SQL.format(table=connection.ops.quote_name(SubscriptionRecord._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql, [scope.project.pk, scope.since, scope.since, scope.since])
        return list(cursor.fetchall())


def _week_rows_without_postgresql(scope: Scope) -> list[tuple[Any, ...]]:
    """The same (kind, Monday, count) groups as _WEEKS_SQL, counted in Python (SQLite, development)."""
    counts: dict[tuple[str, dt.date], int] = {}
    records = SubscriptionRecord.objects.filter(project=scope.project).filter(
        Q(created_at__gte=scope.since) | Q(ended_at__gte=scope.since)
    )
    for created_at, ended_at in records.values_list("created_at", "ended_at"):
        for kind, at in (("new", created_at), ("churned", ended_at)):
            if at is not None and at >= scope.since:
                day = at.astimezone(dt.UTC).date()
                monday = day - dt.timedelta(days=day.weekday())
                counts[(kind, monday)] = counts.get((kind, monday), 0) + 1
    return [(kind, monday, count) for (kind, monday), count in counts.items()]


def revenue_per_day(scope: Scope) -> list[dict[str, Any]]:
    """Gross (payments), refunded and net per UTC day and currency from the revenue ledger (one query)."""
    rows = (
        RevenueEntry.objects.filter(project=scope.project, occurred_at__gte=scope.since)
        .annotate(day=TruncDate("occurred_at", tzinfo=dt.UTC))
        .values("day", "currency")
        .annotate(
            gross=Sum("amount", filter=Q(kind=RevenueEntry.Kind.PAYMENT), default=0),
            refunded=Sum("amount", filter=Q(kind=RevenueEntry.Kind.REFUND), default=0),
        )
        .order_by("currency", "day")
    )
    return [{**row, "currency": row["currency"].lower(), "net": row["gross"] - row["refunded"]} for row in rows]


def revenue_totals(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The period's totals per currency, summed from revenue_per_day's groups (no second query)."""
    totals: dict[str, dict[str, Any]] = {}
    for day in days:
        total = totals.setdefault(day["currency"], {"currency": day["currency"], "gross": 0, "refunded": 0, "net": 0})
        for key in ("gross", "refunded", "net"):
            total[key] += day[key]
    return [totals[currency] for currency in sorted(totals)]


def webhook_ledger(scope: Scope) -> dict[str, Any]:
    """The project's unprocessed events by status, failures in the last 24 h, the oldest one's age.

    A failure "in the last 24 h" is a failed event whose last attempt was claimed within 24 h.
    """
    status = ProcessorEvent.Status
    figures = ProcessorEvent.objects.filter(project=scope.project, status__in=UNPROCESSED).aggregate(
        received=Count("id", filter=Q(status=status.RECEIVED)),
        processing=Count("id", filter=Q(status=status.PROCESSING)),
        failed=Count("id", filter=Q(status=status.FAILED)),
        failed_24h=Count("id", filter=Q(status=status.FAILED, claimed_at__gte=scope.now - dt.timedelta(hours=24))),
        oldest=Min("received_at"),
    )
    oldest = figures.pop("oldest")
    return {
        "backlog": [{"status": name, "count": figures[name]} for name in ("received", "processing", "failed")],
        "failed_24h": figures["failed_24h"],
        "oldest_received_at": oldest,
        "oldest_age_seconds": int((scope.now - oldest).total_seconds()) if oldest else None,
    }


def reconciliation_state(scope: Scope) -> dict[str, Any]:
    """Open discrepancies per kind, and the project's last reconciliation run (or None)."""
    open_by_kind = list(
        Discrepancy.objects.filter(project=scope.project, status=Discrepancy.Status.OPEN)
        .values("kind")
        .annotate(count=Count("id"))
        .order_by("kind")
    )
    last_run = (
        ReconciliationRun.objects.filter(project=scope.project)
        .order_by("-started_at")
        .values("id", "mode", "status", "started_at", "finished_at")
        .first()
    )
    return {"open_by_kind": open_by_kind, "last_run": last_run}


def recovery_funnel(scope: Scope) -> list[dict[str, Any]]:
    """Invoice sessions that expired in the period → were abandoned → got a recovery attempt → whose
    invoice is paid (each stage a subset of the one before), in one query."""
    has_attempt = Exists(RecoveryAttempt.objects.filter(session=OuterRef("pk")))
    figures = (
        CheckoutSession.objects.filter(project=scope.project, invoice__isnull=False, expired_at__gte=scope.since)
        .annotate(has_attempt=has_attempt)
        .aggregate(
            expired=Count("id"),
            abandoned=Count("id", filter=Q(abandoned_at__isnull=False)),
            recovered=Count("id", filter=Q(abandoned_at__isnull=False, has_attempt=True)),
            paid=Count(
                "id", filter=Q(abandoned_at__isnull=False, has_attempt=True, invoice__status=Invoice.Status.PAID)
            ),
        )
    )
    return [{"stage": stage, "count": figures[stage]} for stage in ("expired", "abandoned", "recovered", "paid")]
