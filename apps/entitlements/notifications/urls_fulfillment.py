"""The fulfillment worker's health and metrics (apps/entitlements/notifications/api_fulfillment.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.entitlements.notifications import api_fulfillment

urlpatterns: list[URLPattern] = [
    path("fulfillment/health", api_fulfillment.FulfillmentHealthApi.as_view(), name="fulfillment-health"),
    path("fulfillment/metrics", api_fulfillment.FulfillmentMetricsApi.as_view(), name="fulfillment-metrics"),
]
