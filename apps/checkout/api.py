"""POST /api/v1/checkout/session and POST /api/v1/portal/session."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.checkout import services
from apps.checkout.models import CheckoutSession
from apps.common.api import client_project, validated_input
from apps.common.idempotency import idempotent
from apps.projects.permissions import CLIENT_PERMISSIONS

_ERRORS = {
    400: OpenApiResponse(description="Invalid input, with the field that is wrong; or Stripe refused the request."),
    401: OpenApiResponse(description="Missing, unknown, revoked or inactive API key."),
    403: OpenApiResponse(description="Outside the key's scopes, or `Project ID does not match`."),
    409: OpenApiResponse(description="The Idempotency-Key was used with a different body, or is in flight."),
    429: OpenApiResponse(description="Rate limited; see Retry-After."),
    502: OpenApiResponse(description="Stripe unavailable: `{detail, stripe_request_id}`."),
}


class _MetadataField(serializers.DictField):
    """Up to 20 string pairs copied onto the Stripe session; our routing keys are reserved."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.CharField(max_length=500, allow_blank=True), **kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        value: dict[str, str] = super().to_internal_value(data)
        if len(value) > 20:
            raise serializers.ValidationError("At most 20 keys.")
        too_long = [key for key in value if not 1 <= len(key) <= 40]
        if too_long:
            raise serializers.ValidationError(f"Keys must be 1 to 40 characters: {', '.join(too_long)}.")
        reserved = sorted(services.RESERVED_METADATA_KEYS & value.keys())
        if reserved:
            raise serializers.ValidationError(f"Reserved keys set by the service: {', '.join(reserved)}.")
        return value


class CheckoutSessionCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("checkout:write",)

    class InputSerializer(serializers.Serializer[Any]):
        user_id = serializers.CharField(max_length=255)
        project_id = serializers.IntegerField()
        price_id = serializers.CharField(max_length=255)
        mode = serializers.ChoiceField(choices=CheckoutSession.Mode.choices)
        success_url = serializers.URLField(max_length=2000)
        cancel_url = serializers.URLField(max_length=2000)
        quantity = serializers.IntegerField(min_value=1, max_value=10_000, default=1)
        trial_days = serializers.IntegerField(min_value=1, max_value=730, required=False, allow_null=True)
        metadata = _MetadataField(required=False)

    class OutputSerializer(serializers.Serializer[Any]):
        checkout_url = serializers.URLField()
        session_id = serializers.CharField()
        expires_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        operation_id="checkout_session_create",
        summary="Send a user to Stripe Checkout for a price",
        description=(
            "Creates (once) the user's Stripe customer and a Checkout session for one price of the project's "
            "catalog. Redirect the user to `checkout_url`. Send an `Idempotency-Key` header to make retries safe. "
            "Take `price_id` from `GET /api/v1/catalog/prices` (the example's id is only a shape)."
        ),
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            **_ERRORS,
            409: OpenApiResponse(
                description=(
                    "The Idempotency-Key was used with a different body, or is in flight; or (subscription mode) "
                    "the user already has an active subscription giving the price's feature: the `detail` points "
                    "to the customer portal (`POST /api/v1/portal/session`). A project with "
                    "`allow_multiple_subscriptions` allows a second one."
                )
            ),
        },
        examples=[
            OpenApiExample(
                "Subscribe to the monthly pro plan",
                request_only=True,
                value={
                    "user_id": "user_42",
                    "project_id": 1,
                    "price_id": "price_1PgafmB7WZ01zgkW6dKueIc5",
                    "mode": "subscription",
                    "success_url": "https://app.local/success",
                    "cancel_url": "https://app.local/cancel",
                    "trial_days": 14,
                    "metadata": {"campaign": "spring"},
                },
            ),
            OpenApiExample(
                "Created",
                response_only=True,
                status_codes=["201"],
                value={
                    "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3",
                    "session_id": "cs_test_a1b2c3",
                    "expires_at": "2026-11-23T10:00:00Z",
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        session = services.checkout_session_create(project=client_project(request), **values)
        body = {"checkout_url": session.url, "session_id": session.stripe_session_id, "expires_at": session.expires_at}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class PortalSessionCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("checkout:write",)

    class InputSerializer(serializers.Serializer[Any]):
        user_id = serializers.CharField(max_length=255)
        project_id = serializers.IntegerField()
        return_url = serializers.URLField(max_length=2000)

    class OutputSerializer(serializers.Serializer[Any]):
        portal_url = serializers.URLField()

    @extend_schema(
        operation_id="portal_session_create",
        summary="Send a user to the Stripe customer portal",
        description="Lets the user cancel or change a subscription. 404 until the user has completed a checkout.",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            404: OpenApiResponse(description="The user has no Stripe customer yet: complete a checkout first."),
            **_ERRORS,
        },
        examples=[
            OpenApiExample(
                "Open the portal",
                request_only=True,
                value={"user_id": "user_42", "project_id": 1, "return_url": "https://app.local/account"},
            ),
            OpenApiExample(
                "Created",
                response_only=True,
                status_codes=["201"],
                value={"portal_url": "https://billing.stripe.com/p/session/test_YWNjdF8x"},
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        portal = services.portal_session_create(project=client_project(request), **values)
        return Response(self.OutputSerializer({"portal_url": portal.url}).data, status=status.HTTP_201_CREATED)
