"""The dashboard page: the panels' figures for one project and period, as charts and as tables."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.common.dashboard import selectors
from apps.common.dashboard.money import major_units, money
from apps.projects.models import Project

# Revenue is what finance reads; whoever may read the revenue ledger may read its summary.
PERMISSION = "entitlements.view_revenueentry"


def _chart(chart_id: str, kind: str, labels: list[str], datasets: list[dict[str, Any]]) -> dict[str, Any]:
    """A Chart.js configuration. No animation: a chart is drawn fully on the first frame (screenshots)."""
    return {
        "id": chart_id,
        "spec": {
            "type": kind,
            "data": {"labels": labels, "datasets": datasets},
            "options": {"animation": False, "responsive": True, "maintainAspectRatio": False},
        },
    }


def _panels(scope: selectors.Scope) -> dict[str, Any]:
    # One transaction: one snapshot for every panel, and JIT off for its aggregates (see there).
    with transaction.atomic():
        selectors.planner_for_reports()
        return _panels_read(scope)


def _panels_read(scope: selectors.Scope) -> dict[str, Any]:
    mrr = selectors.mrr_by_currency(scope)
    statuses = selectors.subscriptions_by_status(scope)
    weeks = selectors.subscriptions_per_week(scope)
    days = selectors.revenue_per_day(scope)
    totals = selectors.revenue_totals(days)
    webhooks = selectors.webhook_ledger(scope)
    reconciliation = selectors.reconciliation_state(scope)
    funnel = selectors.recovery_funnel(scope)

    revenue_charts = []
    for total in totals:
        currency = total["currency"]
        rows = [day for day in days if day["currency"] == currency]
        revenue_charts.append(
            {
                "currency": currency.upper(),
                "total": {key: money(total[key], currency) for key in ("gross", "refunded", "net")},
                "rows": [
                    {"day": row["day"], **{key: money(row[key], currency) for key in ("gross", "refunded", "net")}}
                    for row in rows
                ],
                "chart": _chart(
                    f"chart-revenue-{currency}",
                    "bar",
                    [row["day"].isoformat() for row in rows],
                    [
                        {
                            "label": f"{key} ({currency.upper()})",
                            "data": [major_units(row[key], currency) for row in rows],
                        }
                        for key in ("gross", "refunded", "net")
                    ],
                ),
            }
        )
    return {
        "mrr": {
            "rows": [{**row, "amount": money(row["mrr"], row["currency"])} for row in mrr],
            "chart": _chart(
                "chart-mrr",
                "bar",
                [row["currency"].upper() for row in mrr],
                [{"label": "MRR (major units)", "data": [major_units(row["mrr"], row["currency"]) for row in mrr]}],
            ),
        },
        "statuses": {
            "rows": statuses,
            "chart": _chart(
                "chart-statuses",
                "doughnut",
                [row["status"] for row in statuses],
                [{"label": "subscriptions", "data": [row["count"] for row in statuses]}],
            ),
        },
        "weeks": {
            "rows": weeks,
            "chart": _chart(
                "chart-weeks",
                "bar",
                [row["week"].isoformat() for row in weeks],
                [
                    {"label": "new", "data": [row["new"] for row in weeks]},
                    {"label": "churned", "data": [row["churned"] for row in weeks]},
                ],
            ),
        },
        "revenue": revenue_charts,
        "webhooks": {
            **webhooks,
            "chart": _chart(
                "chart-webhooks",
                "bar",
                [row["status"] for row in webhooks["backlog"]],
                [{"label": "events", "data": [row["count"] for row in webhooks["backlog"]]}],
            ),
        },
        "reconciliation": {
            **reconciliation,
            "chart": _chart(
                "chart-discrepancies",
                "bar",
                [row["kind"] for row in reconciliation["open_by_kind"]],
                [{"label": "open discrepancies", "data": [row["count"] for row in reconciliation["open_by_kind"]]}],
            ),
        },
        "funnel": {
            "rows": funnel,
            "chart": _chart(
                "chart-funnel",
                "bar",
                [row["stage"] for row in funnel],
                [{"label": "invoice sessions", "data": [row["count"] for row in funnel]}],
            ),
        },
    }


def _period(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("period", selectors.DEFAULT_PERIOD))
    except ValueError:
        return selectors.DEFAULT_PERIOD
    return days if days in selectors.PERIODS else selectors.DEFAULT_PERIOD


def dashboard_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    projects = selectors.project_choices()
    wanted = request.GET.get("project") or (projects[0]["slug"] if projects else "")
    project = Project.objects.filter(slug=wanted).first() if wanted else None
    days = _period(request)
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "projects": projects,
        "project": project,
        "periods": selectors.PERIODS,
        "period": days,
        "panels": _panels(selectors.Scope(project=project, days=days, now=timezone.now())) if project else None,
    }
    return TemplateResponse(request, "admin/dashboard.html", context)


# admin_view: the admin's login redirect for anonymous and non-staff users, never cached.
dashboard = admin.site.admin_view(dashboard_view)
