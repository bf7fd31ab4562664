"""Entitlement reads (the check is the micro-apps' hot path) and support grants."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import client_of, client_project, validated_input
from apps.common.idempotency import idempotent
from apps.common.query import InstantField, QueryTextField, instant_text, text_param, validated_query
from apps.entitlements import grants, selectors
from apps.projects.permissions import CLIENT_PERMISSIONS

USER_ID_MAX = 255
FEATURE_CODE_MAX = 64
_PROJECT = OpenApiParameter(
    "project_id",
    {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999},
    # Optional, as it always was: the key already names the project; sent, it is checked.
    required=False,
    description="Your key's project; optional (the key names it), but when sent it must match (else 403).",
)


# A header, not a body field: the body stays exactly as the contract shows it.
VERSION_HEADER = "X-Entitlements-Version"
_VERSION = OpenApiParameter(
    VERSION_HEADER,
    int,
    OpenApiParameter.HEADER,
    response=[200],
    description=(
        "The version of the user's entitlements, as carried by `entitlements.updated` notifications; it only "
        "grows. Read before the entitlements, so the body is of this version or newer, except in the instant "
        "after a change when the service's cache may still hold the previous list: a notification of the same "
        "version is the authority for it."
    ),
)


class EntitlementSerializer(serializers.Serializer[Any]):
    feature_code = serializers.CharField()
    active = serializers.BooleanField()
    source = serializers.ChoiceField(choices=["subscription", "purchase", "grant"])  # type: ignore[assignment]
    source_id = serializers.IntegerField()
    valid_from = serializers.DateTimeField()
    valid_to = serializers.DateTimeField(allow_null=True)


class EntitlementListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("entitlements:read",)

    class QuerySerializer(serializers.Serializer[Any]):
        # project_id is checked by ProjectMatches (a permission), before the view parses its query.
        user_id = QueryTextField(max_length=USER_ID_MAX, help_text="Your app's id for the user.")
        feature_code = QueryTextField(max_length=FEATURE_CODE_MAX, required=False, help_text="Only this feature.")
        as_of = InstantField(
            required=False,
            help_text="An ISO 8601 instant with a time zone; the answer at that time (past or future).",
        )

    class OutputSerializer(serializers.Serializer[Any]):
        entitlements = EntitlementSerializer(many=True)

    @extend_schema(
        operation_id="entitlements_list",
        summary="A user's entitlements, now or at another instant",
        parameters=[QuerySerializer, _PROJECT, _VERSION],
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample(
                "A subscriber",
                value={
                    "entitlements": [
                        {
                            "feature_code": "pro",
                            "active": True,
                            "source": "subscription",
                            "source_id": 12,
                            "valid_from": "2026-11-01T09:00:00Z",
                            "valid_to": "2026-12-01T09:00:00Z",
                        }
                    ]
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, self.QuerySerializer)
        project_id = client_of(request).project_id
        # First the version, then the rows: the rows are then at least that version, but for the instant
        # between a change's commit and its cache invalidation (the SDK lets a push of that version win).
        version = selectors.entitlement_version(project_id=project_id, user_id=query["user_id"])
        rows = selectors.entitlement_list(
            project_id=project_id,
            user_id=query["user_id"],
            feature_code=query.get("feature_code"),
            at=query.get("as_of"),
        )
        response = Response(self.OutputSerializer({"entitlements": rows}).data)
        response[VERSION_HEADER] = str(version)
        return response


class EntitlementCheckApi(APIView):
    """The hot path: a cache read on a warm cache, no database.

    The URL is served by api_check.entitlement_check, which answers a warm check itself in one Redis
    round trip and hands every other request to this view; this view's schema is the route's.
    """

    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("entitlements:read",)

    class OutputSerializer(serializers.Serializer[Any]):
        feature_code = serializers.CharField()
        active = serializers.BooleanField()
        valid_to = serializers.DateTimeField(allow_null=True)

    class QuerySerializer(serializers.Serializer[Any]):
        # For the schema only: get() parses these two by hand (see there), with the same limits.
        user_id = QueryTextField(max_length=USER_ID_MAX, help_text="Your app's id for the user.")
        feature_code = QueryTextField(max_length=FEATURE_CODE_MAX, help_text="The feature to check, such as `pro`.")

    @extend_schema(
        operation_id="entitlements_check",
        summary="May this user use this feature now?",
        parameters=[QuerySerializer, _PROJECT],
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample("Active", value={"feature_code": "pro", "active": True, "valid_to": "2026-12-01T09:00:00Z"})
        ],
    )
    def get(self, request: Request) -> Response:
        # Parsed by hand, not by validated_query(request, self.QuerySerializer) as everywhere else:
        # a serializer per call is measurable on this path. text_param answers as QueryTextField does.
        user_id = text_param(request, "user_id", max_length=USER_ID_MAX)
        feature_code = text_param(request, "feature_code", max_length=FEATURE_CODE_MAX)
        active, valid_to = selectors.entitlement_check(
            project_id=client_of(request).project_id, user_id=user_id, feature_code=feature_code
        )
        valid = instant_text(valid_to) if valid_to else None
        # Built by hand: a serializer per call is measurable on this path.
        return Response({"feature_code": feature_code, "active": active, "valid_to": valid})


class GrantCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("admin:write",)

    class InputSerializer(serializers.Serializer[Any]):
        user_id = serializers.CharField(max_length=USER_ID_MAX)
        project_id = serializers.IntegerField(help_text="Must be your key's project (else 403).")
        feature_code = serializers.CharField(
            max_length=FEATURE_CODE_MAX, help_text="Known to the project's catalog or declared on the project."
        )
        granted_by = serializers.CharField(max_length=255, help_text="Who decided, for the audit log.")
        reason = serializers.CharField(max_length=2000)
        valid_from = serializers.DateTimeField(required=False, help_text="Default: now.")
        valid_to = serializers.DateTimeField(
            required=False, allow_null=True, help_text="Must be in the future and after valid_from; null: no end."
        )

    class OutputSerializer(serializers.Serializer[Any]):
        grant_id = serializers.IntegerField(source="pk")
        user_id = serializers.CharField()
        feature_code = serializers.CharField()
        granted_by = serializers.CharField()
        reason = serializers.CharField()
        valid_from = serializers.DateTimeField()
        valid_to = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        operation_id="grant_create",
        summary="Grant a feature to a user (support)",
        description=(
            "An unknown `feature_code` is a 400, and so is a `valid_to` that has already passed. "
            "Send an `Idempotency-Key` header to make a retry safe: the same key and body replay the first 201."
        ),
        request=InputSerializer,
        responses={201: OutputSerializer},
        examples=[
            OpenApiExample(
                "A VIP pilot",
                request_only=True,
                value={
                    "user_id": "user_42",
                    "project_id": 1,
                    "feature_code": "labs",
                    "granted_by": "support@spacehq",
                    "reason": "VIP pilot",
                    "valid_to": "2027-01-01T00:00:00Z",
                },
            ),
            OpenApiExample(
                "Granted",
                response_only=True,
                status_codes=["201"],
                value={
                    "grant_id": 7,
                    "user_id": "user_42",
                    "feature_code": "labs",
                    "granted_by": "support@spacehq",
                    "reason": "VIP pilot",
                    "valid_from": "2026-11-22T10:00:00Z",
                    "valid_to": "2027-01-01T00:00:00Z",
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        grant = grants.grant_create(project=client_project(request), **values)
        return Response(self.OutputSerializer(grant).data, status=status.HTTP_201_CREATED)


class GrantRevokeApi(APIView):
    """The grant's twin: it takes the grant's body, so that a client can send the same body to both."""

    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("admin:write",)

    class InputSerializer(serializers.Serializer[Any]):
        user_id = serializers.CharField(max_length=USER_ID_MAX)
        project_id = serializers.IntegerField(help_text="Must be your key's project (else 403).")
        feature_code = serializers.CharField(max_length=FEATURE_CODE_MAX)
        revoked_by = serializers.CharField(max_length=255, required=False, help_text="Who decided, for the audit log.")
        granted_by = serializers.CharField(
            max_length=255, required=False, help_text="Taken as revoked_by when that is absent (the grant's body)."
        )
        reason = serializers.CharField(max_length=2000)
        # Accepted so that the grant's body can be sent as it is; a revoke ends grants now.
        valid_from = serializers.DateTimeField(required=False, allow_null=True, help_text="Accepted and ignored.")
        valid_to = serializers.DateTimeField(required=False, allow_null=True, help_text="Accepted and ignored.")

    class OutputSerializer(serializers.Serializer[Any]):
        revoked = serializers.IntegerField(help_text="How many grants ended; 0 is not an error.")

    @extend_schema(
        operation_id="grant_revoke",
        summary="End a user's grants of a feature (support)",
        description=(
            "Ends every grant of the feature that has not ended yet. The actor in the audit log is `revoked_by`, "
            "else `granted_by`, else the calling app (`app:<app name>`). The grant's own body is accepted as it "
            "is: `valid_from` and `valid_to` are ignored."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample(
                "Revoke",
                request_only=True,
                value={
                    "user_id": "user_42",
                    "project_id": 1,
                    "feature_code": "labs",
                    "revoked_by": "support@spacehq",
                    "reason": "pilot over",
                },
            ),
            OpenApiExample(
                "The grant's body",
                request_only=True,
                value={
                    "user_id": "user_42",
                    "project_id": 1,
                    "feature_code": "labs",
                    "granted_by": "support@spacehq",
                    "reason": "VIP pilot over",
                    "valid_to": "2027-01-01T00:00:00Z",
                },
            ),
            OpenApiExample("Revoked", response_only=True, value={"revoked": 1}),
        ],
    )
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        granted_by = values.get("granted_by")
        actor = values.get("revoked_by") or granted_by or f"app:{client_of(request).app_name}"
        count = grants.grants_revoke(
            project=client_project(request),
            user_id=values["user_id"],
            feature_code=values["feature_code"],
            revoked_by=actor,
            reason=values["reason"],
        )
        return Response({"revoked": count})
