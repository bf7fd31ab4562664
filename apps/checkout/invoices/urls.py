"""Invoices: pricing configured products into integer lines, the status machine, and the API."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.checkout.invoices import api

urlpatterns: list[URLPattern] = [
    path("billing/invoices", api.invoices_route, name="invoices"),
    path("billing/invoices/<int:invoice_id>", api.InvoiceDetailApi.as_view(), name="invoice-detail"),
    path("billing/invoices/<int:invoice_id>/void", api.InvoiceVoidApi.as_view(), name="invoice-void"),
    path(
        "billing/invoices/<int:invoice_id>/mark_uncollectible",
        api.InvoiceMarkUncollectibleApi.as_view(),
        name="invoice-mark-uncollectible",
    ),
]
