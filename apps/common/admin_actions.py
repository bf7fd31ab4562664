"""Admin actions that need a typed reason before they run (revoking grants, replaying events).

An action decorated with `reason_action` first answers an intermediate page that lists what was
selected and asks for the reason; only its submit, with a non-blank reason, runs the action. That
page posts the selection back to the changelist the way Django's own "delete selected" confirmation
does (`action` and `_selected_action`, no `index`), so Django re-checks the action's permissions and
re-applies the changelist's filters on the second request too: nothing here bypasses them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

# How many of the selected rows the intermediate page names; the rest are counted.
LISTED_ROWS = 20

ReasonActionBody = Callable[[Any, HttpRequest, QuerySet[Any], str], None]
AdminAction = Callable[[Any, HttpRequest, QuerySet[Any]], HttpResponse | None]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Recorded on the row and in the audit log.",
    )


def reason_action(*, description: str, permissions: Sequence[str] | None = None) -> Callable[[ReasonActionBody], Any]:
    """Decorates `def action(self, request, queryset, reason)`; the decorated action asks for the reason.

    `permissions` are those of `admin.action`. The body runs only with the typed, stripped reason.
    """

    def decorate(body: ReasonActionBody) -> AdminAction:
        @functools.wraps(body)
        def action(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]) -> Any:
            # The changelist's action bar never posts a `reason`, so the first request shows the
            # page; its submit always does (blank when nothing was typed), which binds the form.
            form = ReasonForm(request.POST) if "reason" in request.POST else ReasonForm()
            if form.is_bound and form.is_valid():
                body(modeladmin, request, queryset, form.cleaned_data["reason"])
                return None  # Django redirects back to the changelist, keeping its filters
            return _reason_page(modeladmin, request, queryset, form, description)

        return admin.action(action, description=description, permissions=permissions)

    return decorate


def _reason_page(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any], form: ReasonForm, title: str
) -> TemplateResponse:
    opts = modeladmin.model._meta
    rows: list[Model] = list(queryset[:LISTED_ROWS])
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "form": form,
        "rows": rows,
        "count": queryset.count(),
        "action": request.POST.get("action", ""),
        # Carried back as posted: with "select all", Django re-selects from the changelist's filters.
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "admin/action_reason.html", context)
