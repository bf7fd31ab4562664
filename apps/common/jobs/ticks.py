"""Which tick (schedule slot) a scheduled start belongs to, so that each tick runs once.

Two beats send the same job at about the same moment; a message may be redelivered. All of them
name the same tick, and the unique constraint on JobRun(job, tick) lets only the first one run.
The tick is named when the message is sent (PeriodicJobTask.apply_async, which beat calls), so a
message redelivered after its worker died, or one that waited in a backlog, claims the tick it was
sent for, not the slot it happens to be delivered in.
- Interval jobs: the slot floor(now / every) * every. Each beat sends once per interval, so each
  slot gets one run however the beats' phases differ.
- Crontab jobs: the latest occurrence at or before now, exactly the time beat fired for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery.schedules import crontab as Crontab
from celery.utils.time import ffwd
from django_celery_beat.models import PeriodicTask

from billing_service.beat_schedule import ScheduledTask


def schedule_of(entry: ScheduledTask) -> tuple[int | None, str | None]:
    """(every_seconds, crontab) as installed (the admin may have changed it), else as declared."""
    row = PeriodicTask.objects.filter(name=entry.name).select_related("interval", "crontab").first()
    if row is not None and row.interval is not None:
        return int(row.interval.schedule.run_every.total_seconds()), None
    if row is not None and row.crontab is not None:
        c = row.crontab
        return None, f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
    return entry.every_seconds, entry.crontab


def crontab_of(expression: str) -> Crontab:
    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    return Crontab(
        minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
    )


def next_occurrence(cron: Crontab, after: datetime) -> datetime:
    """The first occurrence strictly after `after` (UTC)."""
    start, delta, _ = cron.remaining_delta(after.astimezone(UTC), ffwd=ffwd)
    result: datetime = (start + delta).astimezone(UTC)
    return result


def previous_occurrence(cron: Crontab, at: datetime) -> datetime:
    """The latest occurrence at or before `at` (UTC)."""
    first = next_occurrence(cron, at)
    period = next_occurrence(cron, first) - first
    look_back = period
    for _ in range(12):  # irregular schedules (9,17 h) may need more than one period back
        candidate = next_occurrence(cron, at - look_back - timedelta(seconds=1))
        if candidate <= at:
            while (following := next_occurrence(cron, candidate)) <= at:
                candidate = following
            return candidate
        look_back *= 2
    raise ValueError("no occurrence found before the given time")


def interval_seconds(every_seconds: int | None, crontab: str | None, *, at: datetime) -> int:
    """The job's period: its interval, or the gap between the crontab's next two occurrences."""
    if every_seconds is not None:
        return every_seconds
    assert crontab is not None
    cron = crontab_of(crontab)
    first = next_occurrence(cron, at)
    return int((next_occurrence(cron, first) - first).total_seconds())


def tick_of(every_seconds: int | None, crontab: str | None, *, at: datetime) -> datetime:
    if every_seconds is not None:
        epoch = int(at.timestamp())
        return datetime.fromtimestamp(epoch - epoch % every_seconds, tz=UTC)
    assert crontab is not None
    return previous_occurrence(crontab_of(crontab), at)


def next_due(every_seconds: int | None, crontab: str | None, *, last_run_at: datetime | None, at: datetime) -> datetime:
    """When beat sends the job next: an interval after its last send, or the crontab's next occurrence."""
    if every_seconds is not None:
        if last_run_at is None:
            return at
        return max(at, last_run_at + timedelta(seconds=every_seconds))
    assert crontab is not None
    return next_occurrence(crontab_of(crontab), at)
