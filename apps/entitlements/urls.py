from django.urls import path

from apps.entitlements import api, api_metrics

# entitlements/check is routed first in billing_service/urls.py (apps/entitlements/api_check.py).
urlpatterns = [
    path("entitlements", api.EntitlementListApi.as_view(), name="entitlements-list"),
    path("admin/grant", api.GrantCreateApi.as_view(), name="grant-create"),
    path("admin/revoke", api.GrantRevokeApi.as_view(), name="grant-revoke"),
    path(
        "metrics/project/<int:project_id>/subscriptions",
        api_metrics.SubscriptionMetricsApi.as_view(),
        name="metrics-subscriptions",
    ),
    path("metrics/project/<int:project_id>/revenue", api_metrics.RevenueMetricsApi.as_view(), name="metrics-revenue"),
]
