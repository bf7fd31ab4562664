"""POST /api/v1/fulfillment/replays (scope ops): send notifications again, by id or by time range.

The answer is a 202 as soon as the deliveries are queued: the fulfillment worker, woken on commit,
sends them. Only the key's project's notifications are replayed; ids of another project's are
ignored, as if they did not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import client_of, validated_input
from apps.common.query import InstantField
from apps.entitlements.notifications import selectors, services
from apps.entitlements.notifications.outbox import ENTITLEMENTS_UPDATED, NOTIFICATION_TYPES
from apps.projects.permissions import CLIENT_PERMISSIONS

NOTIFICATION_IDS_MAX = 1000
NOTIFICATION_ID_PATTERN = r"^ntf_[0-9a-f]{24}$"
_BIGINT_MAX = 2**63 - 1
_WINDOW_DAYS = services.REPLAY_WINDOW_MAX.days


class FulfillmentReplayCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("ops",)

    class InputSerializer(serializers.Serializer[Any]):
        notification_ids = serializers.ListField(
            child=serializers.RegexField(NOTIFICATION_ID_PATTERN, max_length=28),
            required=False,
            min_length=1,
            max_length=NOTIFICATION_IDS_MAX,
            help_text="The notifications to send again (the envelopes' `id`). Or give `since` and `until`.",
        )
        since = InstantField(required=False, help_text="With `until`: notifications created from this instant on.")
        until = InstantField(
            required=False, help_text=f"With `since`: ... and before this one; at most {_WINDOW_DAYS} days after it."
        )
        types = serializers.ListField(
            child=serializers.ChoiceField(choices=NOTIFICATION_TYPES),
            required=False,
            max_length=20,
            help_text="Only these types (any, when omitted).",
        )
        endpoint_id = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=_BIGINT_MAX,
            help_text="Only to this endpoint (one of your project's); every subscribed endpoint when omitted.",
        )
        dry_run = serializers.BooleanField(default=False, help_text="Count what would be sent; change nothing.")
        reason = serializers.CharField(
            max_length=2000, required=False, default="", allow_blank=True, help_text="Kept in the audit log."
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            ids = attrs.get("notification_ids")
            since, until = attrs.get("since"), attrs.get("until")
            if ids is not None and (since or until):
                raise serializers.ValidationError("Give notification_ids, or since and until; not both.")
            if ids is None and not (since or until):
                raise serializers.ValidationError("Give notification_ids, or since and until.")
            if ids is None:
                if since is None:
                    raise serializers.ValidationError({"since": ["Required with until."]})
                if until is None:
                    raise serializers.ValidationError({"until": ["Required with since."]})
                if until <= since:
                    raise serializers.ValidationError({"until": ["Must be after since."]})
                if until - since > dt.timedelta(days=_WINDOW_DAYS):
                    raise serializers.ValidationError({"until": [f"At most {_WINDOW_DAYS} days after since."]})
            return attrs

    class OutputSerializer(serializers.Serializer[Any]):
        notifications = serializers.IntegerField(help_text="Notifications selected (your project's only).")
        deliveries = serializers.IntegerField(
            help_text="Deliveries queued: those reset to pending, plus new ones to endpoints subscribed since."
        )
        dry_run = serializers.BooleanField(help_text="True: nothing was queued; the counts are what would be.")

    @extend_schema(
        operation_id="fulfillment_replay_create",
        summary="Send notifications again, by id or by time range (scope ops); answers 202 once they are queued",
        description=(
            "Every delivery of the selected notifications is reset to `pending` now, and each endpoint of your "
            "project subscribed to a notification's type that has no delivery of it gets one (an endpoint added "
            "later). The fulfillment worker sends them with the endpoint's current secret and the notification's "
            "original `id`, so receivers that dedupe by `id` drop what they already applied. Select by "
            f"`notification_ids` (up to {NOTIFICATION_IDS_MAX}), or by `since` and `until` (at most {_WINDOW_DAYS} "
            f"days, up to {services.REPLAY_NOTIFICATIONS_MAX} notifications) and optionally `types`. The replay is "
            "audited; a dry run only counts."
        ),
        request=InputSerializer,
        responses={
            202: OutputSerializer,
            400: OpenApiResponse(
                description="No selector or both, a window wider than allowed, an unknown type, an `endpoint_id` "
                "that is not your project's, or too many matching notifications."
            ),
            403: OpenApiResponse(description="The key lacks the `ops` scope."),
        },
        examples=[
            OpenApiExample(
                "One notification", request_only=True, value={"notification_ids": ["ntf_5f0c2a9e8b7d6c5b4a392817"]}
            ),
            OpenApiExample(
                "A day of entitlement changes, to one endpoint, dry run",
                request_only=True,
                value={
                    "since": "2026-11-27T00:00:00Z",
                    "until": "2026-11-28T00:00:00Z",
                    "types": [ENTITLEMENTS_UPDATED],
                    "endpoint_id": 7,
                    "dry_run": True,
                    "reason": "receiver was down",
                },
            ),
            OpenApiExample(
                "Queued",
                response_only=True,
                status_codes=["202"],
                value={"notifications": 1, "deliveries": 2, "dry_run": False},
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        client = client_of(request)
        endpoint_id = values.get("endpoint_id")
        if endpoint_id is not None and (
            selectors.endpoint_get_for_project(project_id=client.project_id, endpoint_id=endpoint_id) is None
        ):
            raise exceptions.ValidationError({"endpoint_id": ["No such endpoint in your project."]})
        outcome = services.notifications_replay(
            project_id=client.project_id,
            actor=f"app:{client.app_name} (key {client.key_prefix})",
            notification_ids=values.get("notification_ids"),
            since=values.get("since"),
            until=values.get("until"),
            types=values.get("types"),
            endpoint_id=endpoint_id,
            dry_run=values["dry_run"],
            reason=values["reason"],
        )
        body = {"notifications": outcome.notifications, "deliveries": outcome.deliveries, "dry_run": outcome.dry_run}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)
