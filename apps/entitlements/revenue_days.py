"""Writes of the revenue ledger's daily totals (models.RevenueDay).

One upsert per ledger entry, in the entry's transaction: `INSERT ... ON CONFLICT DO UPDATE` adds to
the day's row, or creates it (PostgreSQL, and SQLite since 3.24). The row lock it takes serialises two
entries of the same project, day and currency until commit, which is short (one event's transaction).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

if TYPE_CHECKING:
    from apps.entitlements.models import RevenueEntry

# Local names only: the table and column names come from the model, never from input.
_UPSERT = """
INSERT INTO {table} (project_id, day, currency, gross, refunded, entries)
VALUES (%s, %s, %s, %s, %s, 1)
ON CONFLICT (project_id, day, currency) DO UPDATE SET
    gross = {table}.gross + excluded.gross,
    refunded = {table}.refunded + excluded.refunded,
    entries = {table}.entries + 1
"""


def revenue_day_of(occurred_at: dt.datetime) -> dt.date:
    """The UTC day an entry counts on (the dashboard's days are UTC days)."""
    return occurred_at.astimezone(dt.UTC).date()


def revenue_day_add(entry: RevenueEntry) -> None:
    from apps.entitlements.models import RevenueDay, RevenueEntry

    payment = entry.kind == RevenueEntry.Kind.PAYMENT
    sql = _UPSERT.format(table=connection.ops.quote_name(RevenueDay._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                entry.project_id,
                revenue_day_of(entry.occurred_at),
                entry.currency.lower(),
                entry.amount if payment else 0,
                0 if payment else entry.amount,
            ],
        )


def revenue_days_rebuild(*, project_id: int | None = None) -> int:
    """Recomputes the daily totals from the ledger (all projects, or one); returns the rows written.

    One aggregate query and one bulk insert, in one transaction, so a reader sees the old totals or
    the new ones. For after a bulk load that bypassed RevenueEntry.save(), or to check the totals.
    """
    from apps.entitlements.models import RevenueDay, RevenueEntry

    entries = RevenueEntry.objects.all() if project_id is None else RevenueEntry.objects.filter(project_id=project_id)
    groups = (
        entries.annotate(day=TruncDate("occurred_at", tzinfo=dt.UTC))
        .values("project_id", "day", "currency")
        .annotate(
            gross=Sum("amount", filter=Q(kind=RevenueEntry.Kind.PAYMENT), default=0),
            refunded=Sum("amount", filter=Q(kind=RevenueEntry.Kind.REFUND), default=0),
            entries=Count("id"),
        )
        .order_by()
    )
    # Currencies differing only in case are one currency (the upsert stores them lower-cased).
    totals: dict[tuple[int, dt.date, str], RevenueDay] = {}
    for group in groups:
        key = (group["project_id"], group["day"], str(group["currency"]).lower())
        row = totals.setdefault(key, RevenueDay(project_id=key[0], day=key[1], currency=key[2]))
        row.gross += group["gross"]
        row.refunded += group["refunded"]
        row.entries += group["entries"]
    with transaction.atomic():
        days = RevenueDay.objects.all() if project_id is None else RevenueDay.objects.filter(project_id=project_id)
        days.delete()
        RevenueDay.objects.bulk_create(totals.values(), batch_size=1000)
    return len(totals)
