"""GET /api/v1/fulfillment/health and /api/v1/fulfillment/metrics (scope ops): the delivery worker.

Scope `ops`, as GET /api/v1/observability/scheduler: both describe the service's worker and its queue
across every project (counts and timestamps, no project's data), for whoever runs the service.
`billing:read` is a micro-app's view of its own project's billing and would let every reporting key
see the whole service's queue. Reports, not probes: always 200, whatever they find.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.query import InstantField
from apps.entitlements.notifications.health import fulfillment_health, fulfillment_totals
from apps.projects.permissions import CLIENT_PERMISSIONS

_ERRORS = {
    401: OpenApiResponse(description="Missing, unknown, revoked or inactive API key."),
    403: OpenApiResponse(description="The key lacks the `ops` scope."),
}


class FulfillmentRunSerializer(serializers.Serializer[Any]):
    started_at = InstantField()
    finished_at = InstantField(allow_null=True, help_text="Null while it runs.")
    status = serializers.ChoiceField(choices=["running", "succeeded", "failed"])


class FulfillmentHealthApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("ops",)

    class OutputSerializer(serializers.Serializer[Any]):
        worker_enabled = serializers.BooleanField(help_text="FULFILLMENT_WORKER_ENABLED.")
        running = serializers.BooleanField(
            help_text="Enabled, and a run finished within 3 poll intervals or one is running now."
        )
        poll_interval_seconds = serializers.IntegerField(help_text="FULFILLMENT_POLL_INTERVAL_SECONDS.")
        batch_size = serializers.IntegerField(help_text="FULFILLMENT_BATCH_SIZE.")
        latest_run = FulfillmentRunSerializer(
            allow_null=True, help_text="The latest run of beat's poll or the command (or a failed woken run)."
        )
        last_error = serializers.CharField(allow_null=True, help_text="The error of the latest failed run.")
        last_error_at = InstantField(allow_null=True, help_text="When that run finished.")
        backlog = serializers.IntegerField(help_text="Pending deliveries, those held by disabled endpoints included.")
        backlog_held = serializers.IntegerField(help_text="Pending deliveries held by a disabled endpoint.")
        oldest_pending_age_seconds = serializers.IntegerField(
            allow_null=True, help_text="Age of the oldest pending delivery; null when none is pending."
        )
        disabled_endpoints = serializers.IntegerField(help_text="Notification endpoints disabled now.")

    @extend_schema(
        operation_id="fulfillment_health",
        summary="The notification delivery worker: running, settings, latest run, last error, backlog",
        description=(
            "Always 200: alert on `running` being false while `worker_enabled` is true, or on a growing "
            "`oldest_pending_age_seconds` (docs/operations.md). Not per project: every `ops` key sees the same."
        ),
        responses={200: OutputSerializer, **_ERRORS},
        examples=[
            OpenApiExample(
                "Healthy",
                value={
                    "worker_enabled": True,
                    "running": True,
                    "poll_interval_seconds": 10,
                    "batch_size": 100,
                    "latest_run": {
                        "started_at": "2026-11-28T12:00:00.012000Z",
                        "finished_at": "2026-11-28T12:00:00.094000Z",
                        "status": "succeeded",
                    },
                    "last_error": None,
                    "last_error_at": None,
                    "backlog": 3,
                    "backlog_held": 0,
                    "oldest_pending_age_seconds": 1,
                    "disabled_endpoints": 0,
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(fulfillment_health(now=timezone.now())).data)


class FulfillmentMetricsApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("ops",)

    class OutputSerializer(serializers.Serializer[Any]):
        delivered = serializers.IntegerField(help_text="Deliveries an endpoint accepted (2xx).")
        failed = serializers.IntegerField(help_text="Deliveries given up after their retry window.")
        retried = serializers.IntegerField(help_text="Attempts after the first of their delivery.")
        loop_errors = serializers.IntegerField(help_text="Worker runs stopped by an error (run history kept).")
        last_delivered_at = InstantField(allow_null=True)
        last_failed_at = InstantField(allow_null=True)
        last_run_started_at = InstantField(
            allow_null=True,
            help_text="The latest recorded run: beat's poll or the command (woken runs when they fail).",
        )
        last_run_finished_at = InstantField(allow_null=True)

    @extend_schema(
        operation_id="fulfillment_metrics",
        summary="The notification delivery worker's totals and timestamps",
        description=(
            "Counted from the database (deliveries, their attempt log and the worker's run history), so every "
            "process answers the same. The same figures are on /metrics as billing_fulfillment_* series."
        ),
        responses={200: OutputSerializer, **_ERRORS},
        examples=[
            OpenApiExample(
                "After a day",
                value={
                    "delivered": 18250,
                    "failed": 2,
                    "retried": 41,
                    "loop_errors": 0,
                    "last_delivered_at": "2026-11-28T11:59:58.201000Z",
                    "last_failed_at": "2026-11-27T09:12:03.550000Z",
                    "last_run_started_at": "2026-11-28T12:00:00.012000Z",
                    "last_run_finished_at": "2026-11-28T12:00:00.094000Z",
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(fulfillment_totals()).data)
