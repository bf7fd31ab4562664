from __future__ import annotations

from django.urls import URLPattern, path

from apps.checkout.hosted import api

urlpatterns: list[URLPattern] = [
    path("billing/invoices/<int:invoice_id>/checkout", api.HostedSessionCreateApi.as_view(), name="invoice-checkout"),
    path("billing/sessions", api.HostedSessionListApi.as_view(), name="billing-sessions"),
    path("billing/sessions/<int:session_id>", api.HostedSessionDetailApi.as_view(), name="billing-session-detail"),
    path(
        "billing/sessions/<int:session_id>/regenerate",
        api.HostedSessionRegenerateApi.as_view(),
        name="billing-session-regenerate",
    ),
]
