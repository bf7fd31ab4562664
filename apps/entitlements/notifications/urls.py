"""Notification endpoints of an app, their delivery log, and replays (apps/entitlements/notifications/api_*.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.entitlements.notifications import api_endpoints, api_replays

_ENDPOINT = "apps/<int:app_id>/endpoints/<int:endpoint_id>"

urlpatterns: list[URLPattern] = [
    path("apps/<int:app_id>/endpoints", api_endpoints.endpoints_route, name="notification-endpoints"),
    path(_ENDPOINT, api_endpoints.endpoint_route, name="notification-endpoint-detail"),
    path(
        f"{_ENDPOINT}/rotate_secret",
        api_endpoints.NotificationEndpointRotateSecretApi.as_view(),
        name="notification-endpoint-rotate-secret",
    ),
    path(
        f"{_ENDPOINT}/deliveries",
        api_endpoints.NotificationEndpointDeliveryListApi.as_view(),
        name="notification-endpoint-deliveries",
    ),
    path("fulfillment/replays", api_replays.FulfillmentReplayCreateApi.as_view(), name="fulfillment-replays"),
]
