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
from django.db.models.functions import TruncWeek

from apps.checkout.models import CheckoutSession, Invoice
from apps.entitlements.models import RevenueDay, SubscriptionRecord
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


def mrr_normalise(groups: list[tuple[int, int]]) -> int:
    """One currency's MRR from its (numerator summed, denominator) groups, rounded once, half to even,
    to an integer minor unit. (Python's round() of a Fraction rounds half to even.)"""
    return round(sum((Fraction(numerator, denominator) for numerator, denominator in groups), Fraction(0)))


def mrr_by_currency(scope: Scope) -> list[dict[str, Any]]:
    """MRR per currency from the billed items of the project's subscriptions (one aggregate query).

    The source is each subscription's own snapshot, through the exact monthly amount
    SubscriptionRecord.save() derives from its items (`subscription_mrr`: numerator / denominator per
    subscription), so a price edited later in the catalog does not rewrite what existing subscriptions
    pay. The query sums those integer columns per (currency, denominator) through the covering
    (project, status) index: an index-only scan, no JSON parsed; Python adds the few fractions exactly
    and rounds once. Items without a fixed `unit_amount` (tiered or metered prices) are not counted.
    """
    rows = (
        SubscriptionRecord.objects.filter(project=scope.project, status__in=MRR_STATUSES, mrr_items__gt=0)
        .values_list("mrr_currency", "mrr_denominator")
        .annotate(numerator=Sum("mrr_numerator"), items=Sum("mrr_items"))
        .order_by("mrr_currency", "mrr_denominator")
    )
    per_currency: dict[str, list[tuple[int, int]]] = {}
    items: dict[str, int] = {}
    for currency, denominator, numerator, count in rows:  # groups, not rows: (currency, denominator)
        per_currency.setdefault(currency, []).append((int(numerator), int(denominator)))
        items[currency] = items.get(currency, 0) + int(count)
    return [
        {"currency": currency, "mrr": mrr_normalise(groups), "items": items[currency]}
        for currency, groups in sorted(per_currency.items())
    ]


def subscriptions_by_status(scope: Scope) -> list[dict[str, Any]]:
    """Subscriptions not ended, counted per status (now, not over the period).

    COUNT(*), not COUNT(id): the id is not in the (project, status) index, and needing it would turn
    this index-only scan into a scan of the table (~2x slower at 100,000 rows).
    """
    return list(
        SubscriptionRecord.objects.filter(project=scope.project)
        .exclude(status__in=ENDED_STATUSES)
        .values("status")
        .annotate(count=Count("*"))
        .order_by("status")
    )


def subscriptions_per_week(scope: Scope) -> list[dict[str, Any]]:
    """New (our record created) and churned (Stripe's ended_at) subscriptions per ISO week (Monday, UTC).

    Two aggregate queries, each an index-only range scan of its (project, date) index (COUNT(*), so
    that no other column is needed).
    """
    weeks: dict[dt.date, dict[str, Any]] = {}
    records = SubscriptionRecord.objects.filter(project=scope.project)
    for kind, field in (("new", "created_at"), ("churned", "ended_at")):
        groups = (
            records.filter(**{f"{field}__gte": scope.since})
            .annotate(week=TruncWeek(field, tzinfo=dt.UTC))
            .values_list("week")
            .annotate(count=Count("*"))
            .order_by()
        )
        for week, count in groups:
            monday = week.date() if isinstance(week, dt.datetime) else week
            weeks.setdefault(monday, {"week": monday, "new": 0, "churned": 0})[kind] = count
    return [weeks[week] for week in sorted(weeks)]


def revenue_per_day(scope: Scope) -> list[dict[str, Any]]:
    """Gross (payments), refunded and net per UTC day and currency, from the ledger's daily totals.

    RevenueDay holds the ledger summed per day in the entries' own transactions, so a year is ~365
    rows per currency instead of every entry. The period is whole UTC days: from the day `since`
    falls on, through today.
    """
    rows = (
        RevenueDay.objects.filter(project=scope.project, day__gte=scope.since.astimezone(dt.UTC).date())
        .values("day", "currency", "gross", "refunded")
        .order_by("currency", "day")
    )
    return [{**row, "net": row["gross"] - row["refunded"]} for row in rows]


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
