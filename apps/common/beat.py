"""Installs billing_service.beat_schedule into django-celery-beat's tables and the job policies."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.common.models import JobPolicy
from billing_service.beat_schedule import BEAT_SCHEDULE, ScheduledTask


@dataclass
class InstallReport:
    created: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _schedule_fields(entry: ScheduledTask) -> dict[str, object]:
    if entry.every_seconds is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(every=entry.every_seconds, period=IntervalSchedule.SECONDS)
        return {"interval": interval, "crontab": None}
    assert entry.crontab is not None
    minute, hour, day_of_month, month_of_year, day_of_week = entry.crontab.split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone="UTC",
    )
    return {"interval": None, "crontab": crontab}


def _policy_fields(entry: ScheduledTask) -> dict[str, object]:
    policy = entry.policy
    return {
        "max_attempts": policy.max_attempts,
        "base_backoff_seconds": policy.base_backoff_seconds,
        "backoff_multiplier": policy.backoff_multiplier,
        "max_backoff_seconds": policy.max_backoff_seconds,
        "jitter_seconds": policy.jitter_seconds,
        "timeout_seconds": policy.timeout_seconds,
    }


def _policy_install(entry: ScheduledTask, *, reset: bool) -> None:
    """The declared policy, unless an operator's row exists and no --reset was given."""
    if reset:
        JobPolicy.objects.update_or_create(job=entry.name, defaults=_policy_fields(entry))
    else:
        JobPolicy.objects.get_or_create(job=entry.name, defaults=_policy_fields(entry))


@transaction.atomic
def beat_schedule_install(*, reset: bool = False) -> InstallReport:
    report = InstallReport()
    for entry in BEAT_SCHEDULE:
        _policy_install(entry, reset=reset)
        existing = PeriodicTask.objects.select_for_update().filter(name=entry.name).first()
        if existing is not None and not reset:
            report.kept.append(entry.name)
            continue
        values = {"task": entry.task, "description": entry.description, "enabled": True, **_schedule_fields(entry)}
        if existing is None:
            PeriodicTask.objects.create(name=entry.name, **values)
            report.created.append(entry.name)
        else:
            for attr, value in values.items():
                setattr(existing, attr, value)
            existing.save()
            report.reset.append(entry.name)
    return report
