"""GET /api/v1/observability/scheduler (scope ops): every periodic job and whether it is overdue.

A report, not a probe: it answers 200 whatever it finds (`healthy` and `overdue` say what is wrong),
so that a monitor can tell "the jobs are late" from "the API is down". /ready does not look at jobs.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.jobs.health import Schedule, scheduler_health
from apps.common.query import InstantField
from apps.projects.permissions import CLIENT_PERMISSIONS

_ERRORS = {
    401: OpenApiResponse(description="Missing, unknown, revoked or inactive API key."),
    403: OpenApiResponse(description="The key lacks the `ops` scope."),
}

_POLICY_EXAMPLE = {
    "max_attempts": 2,
    "base_backoff_seconds": 10,
    "backoff_multiplier": 2.0,
    "max_backoff_seconds": 20,
    "jitter_seconds": 5,
    "timeout_seconds": 240,
}

_SWEEP_EXAMPLE = {
    "name": "sweep-webhook-ledger",
    "task": "webhooks.sweep_ledger",
    "description": "Re-enqueues Stripe events stuck in the ledger (lost message, killed worker, failed retries).",
    "installed": True,
    "enabled": True,
    "schedule": {"every_seconds": 60},
    "interval_seconds": 60,
    "policy": _POLICY_EXAMPLE,
    "last_sent_at": "2026-11-28T12:00:00.004211Z",
    "last_started_at": "2026-11-28T12:00:00.031870Z",
    "last_finished_at": "2026-11-28T12:00:00.058112Z",
    "last_succeeded_at": "2026-11-28T12:00:00.058112Z",
    "last_error": None,
    "running": False,
    "running_since": None,
    "lock_held": False,
    "runs_24h": {"running": 0, "succeeded": 1440, "failed": 0, "skipped": 3},
    "next_due_at": "2026-11-28T12:01:00.004211Z",
    "overdue_after": "2026-11-28T12:02:00.058112Z",
    "overdue": False,
}

_PURGE_EXAMPLE = {
    "name": "purge-idempotency-records",
    "task": "common.purge_idempotency_records",
    "description": "Deletes stored Idempotency-Key answers older than a day.",
    "installed": True,
    "enabled": True,
    "schedule": {"crontab": "17 3 * * *", "timezone": "UTC"},
    "interval_seconds": 86400,
    "policy": {
        **_POLICY_EXAMPLE,
        "max_attempts": 3,
        "base_backoff_seconds": 30,
        "max_backoff_seconds": 600,
        "jitter_seconds": 10,
    },
    "last_sent_at": "2026-11-28T03:17:00.002311Z",
    "last_started_at": "2026-11-28T03:18:05.120544Z",
    "last_finished_at": "2026-11-28T03:18:05.160032Z",
    "last_succeeded_at": "2026-11-25T03:17:00.240017Z",
    "last_error": {
        "at": "2026-11-28T03:18:05.160032Z",
        "error": "OperationalError: canceling statement due to statement timeout",
        "trigger": "retry",
        "attempt": 3,
    },
    "running": False,
    "running_since": None,
    "lock_held": False,
    "runs_24h": {"running": 0, "succeeded": 0, "failed": 3, "skipped": 0},
    "next_due_at": "2026-11-29T03:17:00Z",
    "overdue_after": "2026-11-27T03:17:00.240017Z",
    "overdue": True,
}

_INSTANT_HELP = "ISO 8601 in UTC; null when there is none."


@extend_schema_field(
    {
        "oneOf": [
            {
                "type": "object",
                "properties": {"every_seconds": {"type": "integer", "minimum": 1}},
                "required": ["every_seconds"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "crontab": {"type": "string", "description": "minute hour day_of_month month_of_year day_of_week"},
                    "timezone": {"type": "string"},
                },
                "required": ["crontab", "timezone"],
                "additionalProperties": False,
            },
        ]
    }
)
class ScheduleField(serializers.Field[Schedule, dict[str, Any], dict[str, Any], Any]):
    """`{"every_seconds": 60}` or `{"crontab": "17 3 * * *", "timezone": "UTC"}`, as installed."""

    def to_representation(self, value: Schedule) -> dict[str, Any]:
        return value.as_dict()


class SchedulerJobPolicySerializer(serializers.Serializer[Any]):
    max_attempts = serializers.IntegerField(help_text="Attempts per tick, the first included.")
    base_backoff_seconds = serializers.IntegerField(help_text="Delay before the second attempt.")
    backoff_multiplier = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        coerce_to_string=False,
        help_text="Each further delay is the previous one times this.",
    )
    max_backoff_seconds = serializers.IntegerField(help_text="No delay exceeds this (before jitter).")
    jitter_seconds = serializers.IntegerField(help_text="A uniform random 0..jitter is added to each delay.")
    timeout_seconds = serializers.IntegerField(
        help_text="One attempt is stopped (and recorded failed) after this long."
    )


class SchedulerJobErrorSerializer(serializers.Serializer[Any]):
    at = InstantField(help_text="When the failed run finished.")
    error = serializers.CharField(help_text="The exception, shortened to 500 characters.")
    trigger = serializers.CharField(help_text="`scheduled`, `manual` or `retry`.")
    attempt = serializers.IntegerField()


class SchedulerJobRunsSerializer(serializers.Serializer[Any]):
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Starts that found the tick already run or the job's lock held.")


class SchedulerJobSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(help_text="The beat schedule entry's name.")
    task = serializers.CharField(help_text="The Celery task beat sends.")
    description = serializers.CharField()
    installed = serializers.BooleanField(help_text="Beat knows it (install_beat_schedule wrote its row).")
    enabled = serializers.BooleanField(help_text="Installed and enabled in the admin; a disabled job is never overdue.")
    schedule = ScheduleField(help_text="As installed (an operator may have changed it), else as declared.")
    interval_seconds = serializers.IntegerField(
        help_text="The interval, or for a crontab the gap between its next two occurrences."
    )
    policy = SchedulerJobPolicySerializer(help_text="Retries and timeout as they stand (the admin may edit them).")
    last_sent_at = InstantField(
        allow_null=True, help_text="When beat last sent it (beat saves this every few minutes, so it lags)."
    )
    last_started_at = InstantField(allow_null=True, help_text="The latest run that started (skipped starts aside).")
    last_finished_at = InstantField(allow_null=True, help_text="The latest run that succeeded or failed.")
    last_succeeded_at = InstantField(allow_null=True, help_text=_INSTANT_HELP)
    last_error = SchedulerJobErrorSerializer(allow_null=True, help_text="The most recent failed run; null if none.")
    running = serializers.BooleanField(help_text="A run is recorded `running` now.")
    running_since = InstantField(allow_null=True, help_text="When the oldest running run started.")
    lock_held = serializers.BooleanField(help_text="A worker holds the job's lock now (PostgreSQL only).")
    runs_24h = SchedulerJobRunsSerializer(help_text="Starts in the last 24 hours by outcome.")
    next_due_at = InstantField(allow_null=True, help_text="When beat sends it next; null when it is disabled.")
    overdue_after = InstantField(
        allow_null=True,
        help_text=(
            "Last success (or, with none, when the job was first known) plus twice the interval: without "
            "a success by then the job is overdue. Null when the job is disabled."
        ),
    )
    overdue = serializers.BooleanField(help_text="Enabled and no success for more than twice its interval.")


class SchedulerHealthApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("ops",)

    class OutputSerializer(serializers.Serializer[Any]):
        checked_at = InstantField(help_text="When the report was made.")
        healthy = serializers.BooleanField(help_text="No enabled job is overdue.")
        overdue = serializers.ListField(child=serializers.CharField(), help_text="The names of the overdue jobs.")
        jobs = SchedulerJobSerializer(many=True, help_text="Every job of the beat schedule, in its declared order.")

    @extend_schema(
        operation_id="scheduler_health",
        summary="Every periodic job: schedule, policy, last runs, next due, overdue",
        description=(
            "One entry per beat schedule job. A job is `overdue` when it is enabled and its last success finished "
            "more than twice its interval ago (with no success on record: more than twice its interval after it "
            "was first known). Always 200: alert on `healthy` being false or on `overdue` (docs/operations.md). "
            "Not per project: every `ops` key sees the same report."
        ),
        responses={200: OutputSerializer, **_ERRORS},
        examples=[
            OpenApiExample(
                "One job overdue",
                value={
                    "checked_at": "2026-11-28T12:00:30Z",
                    "healthy": False,
                    "overdue": ["purge-idempotency-records"],
                    "jobs": [_PURGE_EXAMPLE, _SWEEP_EXAMPLE],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(scheduler_health()).data)
