"""Included under the admin's URL prefix, before admin.site.urls (see billing_service/urls.py)."""

from __future__ import annotations

from django.urls import path

from apps.common.dashboard.views import dashboard

urlpatterns = [path("dashboard/", dashboard, name="admin_dashboard")]
