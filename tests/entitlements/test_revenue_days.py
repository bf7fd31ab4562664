"""The ledger's daily totals (RevenueDay) move with every entry, in the entry's transaction."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from apps.entitlements.models import RevenueDay, RevenueEntry
from apps.entitlements.revenue_days import revenue_days_rebuild
from apps.projects.models import Project
from tests.factories import ProjectFactory, RevenueEntryFactory

pytestmark = pytest.mark.django_db

DAY = dt.datetime(2026, 6, 16, 10, 0, tzinfo=dt.UTC)


def _days(project: Project) -> list[tuple[dt.date, str, int, int, int]]:
    return list(
        RevenueDay.objects.filter(project=project)
        .order_by("currency", "day")
        .values_list("day", "currency", "gross", "refunded", "entries")
    )


def _ledger(project: Project) -> None:
    pay, refund = RevenueEntry.Kind.PAYMENT, RevenueEntry.Kind.REFUND
    RevenueEntryFactory.create(project=project, kind=pay, amount=5000, currency="usd", occurred_at=DAY)
    RevenueEntryFactory.create(project=project, kind=pay, amount=999, currency="USD", occurred_at=DAY)
    RevenueEntryFactory.create(project=project, kind=refund, amount=1500, currency="usd", occurred_at=DAY)
    # 23:30 in UTC-2 is 01:30 UTC the next day: days are UTC days.
    late = dt.datetime(2026, 6, 16, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    RevenueEntryFactory.create(project=project, kind=pay, amount=3000, currency="eur", occurred_at=late)


def test_each_entry_adds_to_its_utc_day_and_currency() -> None:
    project = ProjectFactory.create()
    other = ProjectFactory.create()
    _ledger(project)
    RevenueEntryFactory.create(project=other, amount=777, occurred_at=DAY)
    assert _days(project) == [
        (dt.date(2026, 6, 17), "eur", 3000, 0, 1),
        (dt.date(2026, 6, 16), "usd", 5999, 1500, 3),
    ]
    assert _days(other) == [(dt.date(2026, 6, 16), "usd", 777, 0, 1)]


def test_an_entry_rolled_back_leaves_the_day_unchanged() -> None:
    project = ProjectFactory.create()
    RevenueEntryFactory.create(project=project, amount=100, occurred_at=DAY)

    def failing_event() -> None:
        with transaction.atomic():
            RevenueEntryFactory.create(project=project, amount=4000, occurred_at=DAY)
            raise RuntimeError("the event's transaction fails after the entry")

    with pytest.raises(RuntimeError):
        failing_event()
    assert _days(project) == [(dt.date(2026, 6, 16), "usd", 100, 0, 1)]


def test_a_duplicate_entry_refused_by_the_ledger_adds_nothing() -> None:
    project = ProjectFactory.create()
    RevenueEntryFactory.create(project=project, stripe_object_id="pi_once", amount=100, occurred_at=DAY)
    with pytest.raises(IntegrityError), transaction.atomic():
        RevenueEntryFactory.create(project=project, stripe_object_id="pi_once", amount=100, occurred_at=DAY)
    assert _days(project) == [(dt.date(2026, 6, 16), "usd", 100, 0, 1)]


def test_rebuilding_from_the_ledger_gives_the_same_totals() -> None:
    project = ProjectFactory.create()
    _ledger(project)
    kept = _days(project)
    RevenueDay.objects.filter(project=project).update(gross=0)  # as if a bulk load had bypassed save()
    assert revenue_days_rebuild(project_id=project.pk) == 2
    assert _days(project) == kept
    RevenueDay.objects.all().delete()
    call_command("rebuild_revenue_days")
    assert _days(project) == kept
