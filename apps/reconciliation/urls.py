"""The reconciliation API (apps/reconciliation/api.py), under /api/v1/."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.reconciliation import api

urlpatterns: list[URLPattern] = [
    path("billing/reconciliation/runs", api.reconciliation_runs_route, name="reconciliation-runs"),
    path(
        "billing/reconciliation/runs/<int:run_id>",
        api.ReconciliationRunDetailApi.as_view(),
        name="reconciliation-run-detail",
    ),
    path(
        "billing/reconciliation/discrepancies",
        api.DiscrepancyListApi.as_view(),
        name="reconciliation-discrepancies",
    ),
    path(
        "billing/reconciliation/discrepancies/<int:discrepancy_id>",
        api.DiscrepancyDetailApi.as_view(),
        name="reconciliation-discrepancy-detail",
    ),
    path(
        "billing/reconciliation/discrepancies/<int:discrepancy_id>/resolve",
        api.DiscrepancyResolveApi.as_view(),
        name="reconciliation-discrepancy-resolve",
    ),
]
