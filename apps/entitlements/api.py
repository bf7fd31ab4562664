"""Entitlement reads (the check is the micro-apps' hot path) and support grants."""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.entitlements import grants, selectors
from apps.projects.permissions import CLIENT_PERMISSIONS, client_of, client_project, validated_input

_USER = OpenApiParameter("user_id", str, required=True, description="Your app's id for the user.")
_PROJECT = OpenApiParameter("project_id", int, required=True, description="Must be your key's project.")
_FEATURE = OpenApiParameter("feature_code", str, description="Only this feature.")


def _required_param(request: Request, name: str, max_length: int = 255) -> str:
    value = request.query_params.get(name, "")
    if not value or len(value) > max_length:
        raise ValidationError({name: [f"Required, at most {max_length} characters."]})
    return value


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

    class OutputSerializer(serializers.Serializer[Any]):
        entitlements = EntitlementSerializer(many=True)

    @extend_schema(
        operation_id="entitlements_list",
        summary="A user's entitlements, now or at another instant",
        parameters=[
            _USER,
            _PROJECT,
            _FEATURE,
            OpenApiParameter("as_of", str, description="ISO 8601 instant; the answer at that time (past or future)."),
        ],
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
        user_id = _required_param(request, "user_id")
        as_of = None
        if "as_of" in request.query_params:
            as_of = parse_datetime(request.query_params["as_of"])
            if as_of is None or as_of.tzinfo is None:
                raise ValidationError(
                    {"as_of": ["An ISO 8601 instant with a time zone, such as 2026-01-01T00:00:00Z."]}
                )
        rows = selectors.entitlement_list(
            project_id=client_of(request).project_id,
            user_id=user_id,
            feature_code=request.query_params.get("feature_code"),
            at=as_of,
        )
        return Response(self.OutputSerializer({"entitlements": rows}).data)


class EntitlementCheckApi(APIView):
    """The hot path: a cache read on a warm cache, no database."""

    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("entitlements:read",)

    class OutputSerializer(serializers.Serializer[Any]):
        feature_code = serializers.CharField()
        active = serializers.BooleanField()
        valid_to = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        operation_id="entitlements_check",
        summary="May this user use this feature now?",
        parameters=[_USER, _PROJECT, OpenApiParameter("feature_code", str, required=True)],
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample("Active", value={"feature_code": "pro", "active": True, "valid_to": "2026-12-01T09:00:00Z"})
        ],
    )
    def get(self, request: Request) -> Response:
        user_id = _required_param(request, "user_id")
        feature_code = _required_param(request, "feature_code", max_length=64)
        active, valid_to = selectors.entitlement_check(
            project_id=client_of(request).project_id, user_id=user_id, feature_code=feature_code
        )
        valid = valid_to.isoformat().replace("+00:00", "Z") if valid_to else None
        # Built by hand: a serializer per call is measurable on this path.
        return Response({"feature_code": feature_code, "active": active, "valid_to": valid})


class GrantCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("admin:write",)

    class InputSerializer(serializers.Serializer[Any]):
        user_id = serializers.CharField(max_length=255)
        project_id = serializers.IntegerField()
        feature_code = serializers.CharField(max_length=64)
        granted_by = serializers.CharField(max_length=255)
        reason = serializers.CharField(max_length=2000)
        valid_from = serializers.DateTimeField(required=False)
        valid_to = serializers.DateTimeField(required=False, allow_null=True)

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
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        grant = grants.grant_create(project=client_project(request), **values)
        return Response(self.OutputSerializer(grant).data, status=status.HTTP_201_CREATED)


class GrantRevokeApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("admin:write",)

    class InputSerializer(serializers.Serializer[Any]):
        user_id = serializers.CharField(max_length=255)
        project_id = serializers.IntegerField()
        feature_code = serializers.CharField(max_length=64)
        revoked_by = serializers.CharField(max_length=255)
        reason = serializers.CharField(max_length=2000)

    class OutputSerializer(serializers.Serializer[Any]):
        revoked = serializers.IntegerField(help_text="How many grants ended; 0 is not an error.")

    @extend_schema(
        operation_id="grant_revoke",
        summary="End a user's grants of a feature (support)",
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
            OpenApiExample("Revoked", response_only=True, value={"revoked": 1}),
        ],
    )
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        count = grants.grants_revoke(project=client_project(request), **values)
        return Response({"revoked": count})
