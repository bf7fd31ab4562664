"""An app's notification endpoints: create, list, read, change, delete, rotate the secret, and its delivery log.

Any valid key of an app manages that app's endpoints (no scope needed); another app of the same
project is a 403 and an app of another project (or none) is a 404, as for every object of another
project. The signing secret is answered twice only: by the create and by a rotation (201 both).
One view per operation; GET and POST of the list share their path, as GET, PATCH and DELETE of one
endpoint do (`routes_by_method`).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import client_of, validated_input
from apps.common.idempotency import idempotent
from apps.common.pagination import BAD_PAGE_QUERY, ListCursorPagination
from apps.common.query import validated_query
from apps.common.routing import routes_by_method
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER
from apps.entitlements.notifications import selectors, services
from apps.entitlements.notifications.models import Delivery, NotificationEndpoint
from apps.entitlements.notifications.outbox import ENTITLEMENTS_UPDATED, NOTIFICATION_TYPES
from apps.projects.models import App
from apps.projects.permissions import CLIENT_PERMISSIONS
from apps.projects.selectors import app_get_for_project

OTHER_APP = "An API key manages only its own app's notification endpoints; this key belongs to app {app_id}."
EVENT_TYPES_MAX = 20

_APP_ID = OpenApiParameter("app_id", int, OpenApiParameter.PATH, description="Your key's app (`GET /api/v1/me`).")
_ENDPOINT_ID = OpenApiParameter("endpoint_id", int, OpenApiParameter.PATH, description="The endpoint's `id`.")
_FORBIDDEN = OpenApiResponse(
    description="`app_id` is another app of your project: a key manages only its own app's endpoints."
)
_NOT_FOUND = OpenApiResponse(description="No such app in your project, or no such endpoint of the app.")
_URL_DOC = (
    "Where notifications are POSTed. `https` (plain `http` is accepted in development and tests only); "
    "no credentials in the URL: verify the `X-Billing-Signature` header instead."
)
_TYPES_DOC = f"The notification types sent here; empty or omitted: every type. Known: {', '.join(NOTIFICATION_TYPES)}."

# --- examples ------------------------------------------------------------------------------------

_ENDPOINT_EXAMPLE: dict[str, Any] = {
    "id": 7,
    "app_id": 1,
    "url": "https://app.local/billing/notifications",
    "event_types": [ENTITLEMENTS_UPDATED],
    "enabled": True,
    "failing_since": None,
    "disabled_at": None,
    "disabled_reason": "",
    "created_at": "2026-11-28T10:00:00Z",
    "updated_at": "2026-11-28T10:00:00Z",
}
_SECRET = "whsec_3qVx0yq1n8Kp2m4w6Z9bT5cR7dF1gH3jL5nP7rT9vX0"  # noqa: S105 - an example
_CREATED_EXAMPLE = {**_ENDPOINT_EXAMPLE, "secret": _SECRET, "previous_secret_expires_at": None}
_ROTATED_EXAMPLE = {
    **_ENDPOINT_EXAMPLE,
    "updated_at": "2026-12-01T09:00:00Z",
    "secret": "whsec_Yb8Q2r0cN4u6W1xE3zA5sD7fG9hJ2kL4mP6qS8tV0wX",
    "previous_secret_expires_at": "2026-12-02T09:00:00Z",
}
_DISABLED_EXAMPLE = {
    **_ENDPOINT_EXAMPLE,
    "enabled": False,
    "failing_since": "2026-11-29T08:00:00Z",
    "disabled_at": "2026-11-30T08:00:05Z",
    "disabled_reason": "Every delivery failed for 24 hours (last: HTTP 503).",
    "updated_at": "2026-11-30T08:00:05Z",
}
_DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": 311,
    "notification_id": "ntf_5f0c2a9e8b7d6c5b4a392817",
    "type": ENTITLEMENTS_UPDATED,
    "user_id": "user_42",
    "status": "delivered",
    "attempts": 2,
    "next_attempt_at": "2026-11-28T10:00:31Z",
    "last_status_code": 200,
    "last_error": "",
    "delivered_at": "2026-11-28T10:00:31Z",
    "failed_at": None,
    "created_at": "2026-11-28T10:00:00Z",
    "attempt_log": [
        {
            "number": 1,
            "attempted_at": "2026-11-28T10:00:00Z",
            "status_code": 503,
            "duration_ms": 41,
            "response_body": "upstream unavailable",
            "error": "",
        },
        {
            "number": 2,
            "attempted_at": "2026-11-28T10:00:31Z",
            "status_code": 200,
            "duration_ms": 12,
            "response_body": '{"ok": true}',
            "error": "",
        },
    ],
}

# --- answers -------------------------------------------------------------------------------------


class NotificationEndpointSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    app_id = serializers.IntegerField()
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField(), help_text="Empty: every type.")
    enabled = serializers.BooleanField(help_text="False: notifications wait (pending) until it is enabled again.")
    failing_since = serializers.DateTimeField(
        allow_null=True, help_text="The first failure of the current run of failures; null after any success."
    )
    disabled_at = serializers.DateTimeField(
        allow_null=True, help_text="When it was disabled: by you, in the admin, or after failing for a day."
    )
    disabled_reason = serializers.CharField(help_text="Why it is disabled (empty while enabled).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class NotificationEndpointWithSecretSerializer(NotificationEndpointSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (`whsec_...`): shown in this answer only; store it now."
    )
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Until then the previous secret signs too (a `v1` each); null: no previous one."
    )


class NotificationEndpointPageSerializer(serializers.Serializer[Any]):
    results = NotificationEndpointSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class DeliveryAttemptSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    attempted_at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True, help_text="null: no HTTP answer (see `error`).")
    duration_ms = serializers.IntegerField()
    response_body = serializers.CharField(help_text="The start of your answer's body (at most 1000 characters).")
    error = serializers.CharField(help_text="A timeout or connection error (empty when an answer came).")


class DeliverySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    notification_id = serializers.CharField(help_text="The envelope's `id`: the same on every redelivery.")
    type = serializers.CharField(source="notification.type")
    user_id = serializers.CharField(source="notification.user_id", help_text="Empty when not about one user.")
    status = serializers.ChoiceField(
        choices=Delivery.Status.choices,
        help_text="`pending` (queued or retrying), `delivered` (a 2xx answer), `failed` (retries exhausted).",
    )
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(help_text="While pending: when the next attempt is due.")
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    attempt_log = DeliveryAttemptSerializer(many=True, help_text="Every attempt, oldest first.")


class DeliveryPageSerializer(serializers.Serializer[Any]):
    results = DeliverySerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class NotificationEndpointDeletedSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    deleted = serializers.BooleanField()


# --- helpers -------------------------------------------------------------------------------------


def _actor(request: Request) -> str:
    client = client_of(request)
    return f"app:{client.app_name} (key {client.key_prefix})"


def _own_app(request: Request, app_id: int) -> App:
    """The key's own app; 403 for another app of its project, 404 for any other id."""
    client = client_of(request)
    if app_id != client.app_id:
        if app_get_for_project(app_id=app_id, project_id=client.project_id) is not None:
            raise exceptions.PermissionDenied(OTHER_APP.format(app_id=client.app_id))
        raise Http404
    return App.objects.get(pk=app_id)


def _own_endpoint(request: Request, app_id: int, endpoint_id: int) -> NotificationEndpoint:
    app = _own_app(request, app_id)
    endpoint = selectors.endpoint_get(app_id=app.pk, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404
    return endpoint


def _event_types_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=NOTIFICATION_TYPES),
        max_length=EVENT_TYPES_MAX,
        help_text=_TYPES_DOC,
        **kwargs,
    )


def _url_field(**kwargs: Any) -> serializers.URLField:
    return serializers.URLField(max_length=services.URL_MAX, help_text=_URL_DOC, **kwargs)


# --- list and create -----------------------------------------------------------------------------


class NotificationEndpointListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    @extend_schema(
        operation_id="notification_endpoint_list",
        summary="Your app's notification endpoints (any key of the app; no secrets)",
        description="Paginated (`limit`, `cursor`), oldest first. A disabled endpoint says when and why.",
        parameters=[_APP_ID, LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={
            200: NotificationEndpointPageSerializer,
            400: OpenApiResponse(description=BAD_PAGE_QUERY),
            403: _FORBIDDEN,
            404: _NOT_FOUND,
        },
        examples=[
            OpenApiExample(
                "One enabled endpoint, one disabled after a day of failures",
                value={"results": [_ENDPOINT_EXAMPLE, {**_DISABLED_EXAMPLE, "id": 8}], "next_cursor": None},
            )
        ],
    )
    def get(self, request: Request, app_id: int) -> Response:
        app = _own_app(request, app_id)
        paginator = ListCursorPagination(ordering="id")
        page = paginator.paginate_queryset(selectors.endpoint_list(app_id=app.pk), request, self)
        return paginator.get_paginated_response(NotificationEndpointSerializer(page, many=True).data)


class NotificationEndpointCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    class InputSerializer(serializers.Serializer[Any]):
        url = _url_field()
        event_types = _event_types_field(required=False, default=list)
        enabled = serializers.BooleanField(required=False, default=True)

    @extend_schema(
        operation_id="notification_endpoint_create",
        summary="Register an endpoint for signed notifications; answers its secret, once (any key of the app)",
        description=(
            "Each notification is POSTed as `{id, type, created, project_id, data}` with "
            '`X-Billing-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under the endpoint\'s '
            "secret. The secret is in this answer only: store it now (rotate it if it is lost). At most "
            f"{services.ENDPOINTS_PER_APP_MAX} endpoints per app."
        ),
        parameters=[_APP_ID],
        request=InputSerializer,
        responses={
            201: NotificationEndpointWithSecretSerializer,
            400: OpenApiResponse(
                description="A bad URL (not https in production, credentials in it), an unknown event type, or "
                f"the app has {services.ENDPOINTS_PER_APP_MAX} endpoints already. Nothing was written."
            ),
            403: _FORBIDDEN,
            404: _NOT_FOUND,
        },
        examples=[
            OpenApiExample(
                "Entitlement changes to one URL",
                request_only=True,
                value={"url": "https://app.local/billing/notifications", "event_types": [ENTITLEMENTS_UPDATED]},
            ),
            OpenApiExample(
                "Created, with its secret", response_only=True, status_codes=["201"], value=_CREATED_EXAMPLE
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, app_id: int) -> Response:
        values = validated_input(request, self.InputSerializer)  # before the lookup, as every keyed body is
        app = _own_app(request, app_id)
        endpoint = services.endpoint_create(
            app=app,
            url=values["url"],
            event_types=values["event_types"],
            enabled=values["enabled"],
            actor=_actor(request),
        )
        return Response(NotificationEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


# --- one endpoint --------------------------------------------------------------------------------


class NotificationEndpointDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    @extend_schema(
        operation_id="notification_endpoint_retrieve",
        summary="One of your app's endpoints, with its state (no secret)",
        parameters=[_APP_ID, _ENDPOINT_ID],
        responses={200: NotificationEndpointSerializer, 403: _FORBIDDEN, 404: _NOT_FOUND},
        examples=[
            OpenApiExample("Enabled", value=_ENDPOINT_EXAMPLE),
            OpenApiExample("Disabled after a day of failures", value=_DISABLED_EXAMPLE),
        ],
    )
    def get(self, request: Request, app_id: int, endpoint_id: int) -> Response:
        return Response(NotificationEndpointSerializer(_own_endpoint(request, app_id, endpoint_id)).data)


class NotificationEndpointUpdateInputSerializer(serializers.Serializer[Any]):
    """PATCH's body (named: drf-spectacular would call a nested one "PatchedInput")."""

    url = _url_field(required=False)
    event_types = _event_types_field(required=False)
    enabled = serializers.BooleanField(
        required=False,
        help_text="true re-enables a disabled endpoint (its failure run starts over; waiting notifications "
        "are sent); false pauses it (notifications wait, pending).",
    )


class NotificationEndpointUpdateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    @extend_schema(
        operation_id="notification_endpoint_update",
        summary="Change an endpoint's URL, event types or enabled flag; re-enable a disabled one",
        description="Only the fields you send change. The secret does not (see `rotate_secret`).",
        parameters=[_APP_ID, _ENDPOINT_ID],
        request=NotificationEndpointUpdateInputSerializer,
        responses={
            200: NotificationEndpointSerializer,
            400: OpenApiResponse(description="A bad URL or an unknown event type; nothing changed."),
            403: _FORBIDDEN,
            404: _NOT_FOUND,
        },
        examples=[
            OpenApiExample("Re-enable", request_only=True, value={"enabled": True}),
            OpenApiExample("Re-enabled", response_only=True, status_codes=["200"], value=_ENDPOINT_EXAMPLE),
        ],
    )
    def patch(self, request: Request, app_id: int, endpoint_id: int) -> Response:
        values = validated_input(request, NotificationEndpointUpdateInputSerializer)
        endpoint = _own_endpoint(request, app_id, endpoint_id)
        updated = services.endpoint_update(
            endpoint=endpoint,
            actor=_actor(request),
            url=values.get("url"),
            event_types=values.get("event_types"),
            enabled=values.get("enabled"),
        )
        return Response(NotificationEndpointSerializer(updated).data)


class NotificationEndpointDeleteApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    @extend_schema(
        operation_id="notification_endpoint_delete",
        summary="Delete an endpoint and its delivery log (nothing more is sent to it)",
        parameters=[_APP_ID, _ENDPOINT_ID],
        responses={200: NotificationEndpointDeletedSerializer, 403: _FORBIDDEN, 404: _NOT_FOUND},
        examples=[OpenApiExample("Deleted", value={"id": 7, "deleted": True})],
    )
    def delete(self, request: Request, app_id: int, endpoint_id: int) -> Response:
        endpoint = _own_endpoint(request, app_id, endpoint_id)
        endpoint_pk = endpoint.pk
        services.endpoint_delete(endpoint=endpoint, actor=_actor(request))
        return Response({"id": endpoint_pk, "deleted": True})


class NotificationEndpointRotateSecretApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    @extend_schema(
        operation_id="notification_endpoint_rotate_secret",
        summary="A new signing secret, answered once; the old one keeps signing during the overlap window",
        description=(
            "No body. Until `previous_secret_expires_at` every notification carries two `v1` signatures, one per "
            "secret, so your receiver may switch to the new secret at any moment in between. Rotating again "
            "within the window retires the oldest secret at once."
        ),
        parameters=[_APP_ID, _ENDPOINT_ID],
        request=None,
        responses={201: NotificationEndpointWithSecretSerializer, 403: _FORBIDDEN, 404: _NOT_FOUND},
        examples=[OpenApiExample("Rotated", status_codes=["201"], value=_ROTATED_EXAMPLE)],
    )
    def post(self, request: Request, app_id: int, endpoint_id: int) -> Response:
        endpoint = _own_endpoint(request, app_id, endpoint_id)
        rotated = services.endpoint_secret_rotate(endpoint=endpoint, actor=_actor(request))
        return Response(NotificationEndpointWithSecretSerializer(rotated).data, status=status.HTTP_201_CREATED)


class NotificationEndpointDeliveryListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    class QuerySerializer(serializers.Serializer[Any]):
        status = serializers.ChoiceField(choices=Delivery.Status.choices, required=False, help_text="Only this status.")

    @extend_schema(
        operation_id="notification_endpoint_delivery_list",
        summary="The endpoint's delivery log, newest first: each delivery with its attempts",
        description=(
            "Each attempt shows the HTTP status your endpoint answered (null when none came: see `error`), how long "
            "it took and the start of its body. Paginated (`limit`, `cursor`); filter by `status`."
        ),
        parameters=[_APP_ID, _ENDPOINT_ID, QuerySerializer, LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={
            200: DeliveryPageSerializer,
            400: OpenApiResponse(description=f"A bad `status`, or {BAD_PAGE_QUERY}"),
            403: _FORBIDDEN,
            404: _NOT_FOUND,
        },
        examples=[
            OpenApiExample(
                "Delivered at the second attempt", value={"results": [_DELIVERY_EXAMPLE], "next_cursor": None}
            )
        ],
    )
    def get(self, request: Request, app_id: int, endpoint_id: int) -> Response:
        endpoint = _own_endpoint(request, app_id, endpoint_id)
        query = validated_query(request, self.QuerySerializer)
        deliveries = selectors.delivery_list(endpoint_id=endpoint.pk, status=query.get("status"))
        paginator = ListCursorPagination(ordering="-id")
        page = paginator.paginate_queryset(deliveries, request, self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


endpoints_route = routes_by_method(NotificationEndpointListApi, NotificationEndpointCreateApi)
endpoint_route = routes_by_method(
    NotificationEndpointDetailApi, NotificationEndpointUpdateApi, NotificationEndpointDeleteApi
)
