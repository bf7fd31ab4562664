"""Reconciliation for finance: runs, the discrepancies they found, resolving them, starting a run.

Runs, cursors and discrepancies are written by runs and by the resolve service only: read-only here.
Finance's actions go through the same services as the API, with the admin user as the actor:

- discrepancies: resolve as accept_stripe / keep_local / ignore, one or many at once, each asking for
  a note first (apps/common/admin_actions.reason_action); every resolution is audited by
  `discrepancy_resolve`, and one that is refused (no longer open, Stripe failed) is named in a message;
- runs: start one for a project (the list's "Start a run" page), or run the selected runs' projects
  again with the same mode; both through `reconciliation_run_request` (one run per project at a time).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, reverse
from django.urls import path as url_path
from django.utils.html import escape, format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from apps.common.admin_actions import reason_action
from apps.common.admin_columns import breakable_column, compact_id, when
from apps.common.admin_evidence import ReadOnlyAdmin
from apps.common.admin_export import CsvExportMixin
from apps.common.audit import audit_record
from apps.common.exceptions import ServiceError
from apps.projects.models import Project
from apps.reconciliation.models import Discrepancy, ReconciliationRun, SyncCursor
from apps.reconciliation.resolutions import discrepancy_resolve
from apps.reconciliation.runs import RunInProgress
from apps.reconciliation.services import reconciliation_run_request

SHORT = 60  # characters of a value's JSON in the discrepancy list
WRAP_AFTER = 24  # characters of JSON that fit its column unbroken
NAMED_REFUSALS = 10  # how many refusals one message names; the rest are counted
DAYS_BACK_MAX = 30  # Stripe's Events API reaches back 30 days
RECENT_RUNS = 20  # the run filter of the discrepancy list offers the latest runs


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def _json(value: Any, *, indent: int | None = None) -> str:
    separators = None if indent else (",", ":")
    return json.dumps(value, indent=indent, sort_keys=True, separators=separators, default=str)


def _pretty(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", _json(value, indent=2))


def _short(value: Any) -> str:
    if value is None:
        return "—"  # nothing on that side
    text = _json(value)
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"


def _short_wrapping(value: Any) -> SafeString:
    # Compact JSON has no spaces to wrap at: a longer value gets line-break opportunities after each
    # comma, colon and underscore, which keep the two value columns inside a 1400 px list without
    # changing the text (a copy gives the same JSON). A short value is left as it is.
    short = _short(value)
    if len(short) <= WRAP_AFTER:
        return escape(short)
    text = str(escape(short))
    for mark in (",", ":", "_"):
        text = text.replace(mark, f"{mark}<wbr>")
    return mark_safe(text)  # noqa: S308 - escaped first


def _run_link(run_id: int | None) -> SafeString | str:
    if run_id is None:
        return "-"
    url = reverse("admin:reconciliation_reconciliationrun_change", args=[run_id])
    return format_html('<a href="{}">run #{}</a>', url, run_id)


def _run_in_progress_message(run: ReconciliationRun) -> SafeString:
    return format_html(
        '{}: <a href="{}">run #{}</a> ({}, {}) is in progress; one run per project at a time.',
        run.project,
        reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]),
        run.pk,
        run.mode,
        run.trigger,
    )


# --- runs ----------------------------------------------------------------------------------------------


class StartRunForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.filter(active=True).order_by("slug"))
    mode = forms.ChoiceField(
        choices=ReconciliationRun.Mode.choices,
        initial=ReconciliationRun.Mode.INCREMENTAL,
        help_text="incremental: what changed at Stripe in the last days; full: every object of the project.",
    )
    days_back = forms.IntegerField(
        min_value=1,
        max_value=DAYS_BACK_MAX,
        required=False,
        help_text=f"incremental only: 1 to {DAYS_BACK_MAX} (Stripe's events reach back 30 days); "
        "RECONCILIATION_DAYS_BACK when empty.",
    )
    dry_run = forms.BooleanField(required=False, help_text="Record the differences, correct nothing.")


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin[ReconciliationRun]):
    # Written only by the run itself: what it compared, found and corrected.
    # What finance scans: which run, how it went, what it found. The trigger, the Stripe request and
    # write counts and the end time are on the run's page (trigger is also a filter).
    list_display = (
        "id",
        "project",
        "mode",
        "status",
        "dry_run",
        "started",
        "duration_ms",
        "drift_detected",
        "corrected",
        "left_open",
        "requested",
    )
    list_filter = ("project", "mode", "status", "trigger", "dry_run")
    search_fields = ("requested_by", "error")
    list_select_related = ("project",)
    date_hierarchy = "started_at"
    started = when("started_at", "started")
    requested = breakable_column("requested_by", "requested by")
    actions = ["run_again"]
    fields = (
        "project",
        "trigger",
        "mode",
        "days_back",
        "dry_run",
        "requested_by",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
        "stripe_requests",
        "db_writes",
        "resumed_from_link",
        "discrepancies_link",
        "error_pre",
        "summary_pretty",
        "counts_pretty",
        "cursors_pretty",
    )
    readonly_fields = fields

    def _total(self, run: ReconciliationRun, name: str) -> Any:
        return run.summary.get(name, "-") if isinstance(run.summary, dict) else "-"

    @admin.display(description="drift")
    def drift_detected(self, run: ReconciliationRun) -> Any:
        return self._total(run, "drift_detected")

    @admin.display(description="corrected")
    def corrected(self, run: ReconciliationRun) -> Any:
        return self._total(run, "corrected")

    @admin.display(description="left open")
    def left_open(self, run: ReconciliationRun) -> Any:
        return self._total(run, "left_open")

    @admin.display(description="summary")
    def summary_pretty(self, run: ReconciliationRun) -> SafeString:
        return _pretty(run.summary)

    @admin.display(description="counts (per object type)")
    def counts_pretty(self, run: ReconciliationRun) -> SafeString:
        return _pretty(run.counts)

    @admin.display(description="cursors (where each listing got to)")
    def cursors_pretty(self, run: ReconciliationRun) -> SafeString:
        return _pretty(run.cursors)

    @admin.display(description="error")
    def error_pre(self, run: ReconciliationRun) -> SafeString | str:
        return format_html("<pre>{}</pre>", run.error) if run.error else "-"

    @admin.display(description="resumed from")
    def resumed_from_link(self, run: ReconciliationRun) -> SafeString | str:
        return _run_link(run.resumed_from_id)

    @admin.display(description="discrepancies")
    def discrepancies_link(self, run: ReconciliationRun) -> SafeString:
        url = f"{reverse('admin:reconciliation_discrepancy_changelist')}?{urlencode({'run__id__exact': run.pk})}"
        return format_html('<a href="{}">{} found by this run</a>', url, run.discrepancies.count())

    def has_run_reconciliation_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("reconciliation.run_reconciliation"))

    def _start(
        self, request: HttpRequest, *, project: Project, mode: str, days_back: int | None, dry_run: bool
    ) -> ReconciliationRun | None:
        """Starts a run through the service and says so; None (and an error message) if one is running."""
        actor = _actor(request)
        try:
            run = reconciliation_run_request(
                project=project,
                mode=mode,
                days_back=days_back,
                dry_run=dry_run,
                trigger=ReconciliationRun.Trigger.ADMIN,
                requested_by=actor,
            )
        except RunInProgress as exc:
            message = _run_in_progress_message(exc.run) if exc.run is not None else str(exc)
            self.message_user(request, message, messages.ERROR)
            return None
        except ServiceError as exc:  # InvalidRunRequest: the form checks the same, but say it if not
            self.message_user(request, f"{project}: {exc}", messages.ERROR)
            return None
        audit_record(
            actor=actor,
            action="reconciliation.run_request",
            target=f"reconciliation run #{run.pk}",
            project=project,
            after={"mode": mode, "days_back": days_back, "dry_run": dry_run, "trigger": run.trigger},
        )
        self.message_user(
            request,
            format_html(
                '{}: started <a href="{}">run #{}</a> ({}{}); a worker does it, refresh to follow it.',
                project,
                reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]),
                run.pk,
                mode,
                ", dry run" if dry_run else "",
            ),
            messages.SUCCESS,
        )
        return run

    @admin.action(description="Run again with the same mode (their projects)", permissions=["run_reconciliation"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[ReconciliationRun]) -> None:
        # One start per project: of several selected runs of a project, the newest names the mode.
        seen: set[int] = set()
        for run in queryset.select_related("project").order_by("-started_at", "-id"):
            if run.project_id in seen:
                continue
            seen.add(run.project_id)
            self._start(request, project=run.project, mode=run.mode, days_back=run.days_back, dry_run=run.dry_run)

    # The "Start a run" page, linked from the list (templates/admin/reconciliation/reconciliationrun/).

    def get_urls(self) -> list[URLPattern]:
        start = url_path(
            "start/", self.admin_site.admin_view(self.start_view), name="reconciliation_reconciliationrun_start"
        )
        return [start, *super().get_urls()]

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_run_reconciliation_permission(request):
            raise PermissionDenied
        form = StartRunForm(request.POST) if request.method == "POST" else StartRunForm()
        if form.is_valid():
            values = form.cleaned_data
            run = self._start(
                request,
                project=values["project"],
                mode=values["mode"],
                days_back=values["days_back"],
                dry_run=values["dry_run"],
            )
            target = (
                reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
                if run is not None
                else reverse("admin:reconciliation_reconciliationrun_changelist")
            )
            return HttpResponseRedirect(target)
        context = {
            **self.admin_site.each_context(request),
            "title": "Start a reconciliation run",
            "subtitle": None,
            "opts": self.model._meta,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/reconciliation/reconciliationrun/start_run.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {**(extra_context or {}), "can_run_reconciliation": self.has_run_reconciliation_permission(request)}
        return super().changelist_view(request, extra)


@admin.register(SyncCursor)
class SyncCursorAdmin(ReadOnlyAdmin[SyncCursor]):
    # Checkpointed by runs after every page: where a run that dies resumes.
    list_display = (
        "project",
        "object_type",
        "mode",
        "starting_after",
        "pages",
        "objects_seen",
        "window_start",
        "completed_at",
        "run",
        "updated_at",
    )
    list_filter = ("project", "object_type", "mode")
    list_select_related = ("project", "run")
    readonly_fields = [f.name for f in SyncCursor._meta.fields]


# --- discrepancies -------------------------------------------------------------------------------------


class RecentRunFilter(admin.SimpleListFilter):
    """The latest runs (every run would be a list as long as the history); a run's page links to its own."""

    title = "run"
    parameter_name = "run__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        runs = ReconciliationRun.objects.select_related("project").order_by("-id")[:RECENT_RUNS]
        return [(str(run.pk), f"#{run.pk} {run.project.slug} {run.mode}") for run in runs]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if not (value.isascii() and value.isdigit() and len(value) < 19):  # a bigint id, not a 500
            return queryset.none()
        return queryset.filter(run_id=int(value))


@admin.register(Discrepancy)
class DiscrepancyAdmin(CsvExportMixin, ReadOnlyAdmin[Discrepancy]):
    export_fields = (
        "id",
        "project__slug",
        "kind",
        "object_type",
        "stripe_id",
        "user_id",
        "local_value",
        "stripe_value",
        "status",
        "resolution_action",
        "resolved_by",
        "resolved_at",
        "detected_at",
        "run_id",
        "note",
    )
    # The kind over the Stripe object in one column; the object type is in the kind
    # ("charge_amount_refunded"). The resolution and the run are filters and on the row's page.
    list_display = ("id", "project", "kind_and_object", "user_id", "local_short", "stripe_short", "status", "detected")
    list_filter = ("status", "kind", "project", "object_type", "resolution_action", RecentRunFilter)
    search_fields = ("stripe_id", "=user_id", "note")
    list_select_related = ("project",)
    date_hierarchy = "detected_at"
    detected = when("detected_at", "detected")

    @admin.display(description="kind / Stripe object", ordering="kind")
    def kind_and_object(self, discrepancy: Discrepancy) -> SafeString:
        kind = mark_safe(escape(discrepancy.kind).replace("_", "_<wbr>"))  # noqa: S308 - escaped first
        return format_html("{}<br>{}", kind, compact_id(discrepancy.stripe_id))

    actions = ["accept_stripe_selected", "keep_local_selected", "ignore_selected"]
    fields = (
        "project",
        "kind",
        "object_type",
        "stripe_id",
        "user_id",
        "values_side_by_side",
        "status",
        "resolution_action",
        "resolved_by",
        "resolved_at",
        "note",
        "detected_at",
        "run_link",
        "last_seen_run_link",
    )
    readonly_fields = fields

    @admin.display(description="ours")
    def local_short(self, discrepancy: Discrepancy) -> SafeString:
        return _short_wrapping(discrepancy.local_value)

    @admin.display(description="Stripe")
    def stripe_short(self, discrepancy: Discrepancy) -> SafeString:
        return _short_wrapping(discrepancy.stripe_value)

    @admin.display(description="ours | Stripe")
    def values_side_by_side(self, discrepancy: Discrepancy) -> SafeString:
        return format_html(
            "<table><thead><tr><th>ours</th><th>Stripe</th></tr></thead><tbody><tr>"
            '<td style="vertical-align: top"><pre>{}</pre></td><td style="vertical-align: top"><pre>{}</pre></td>'
            "</tr></tbody></table>",
            _json(discrepancy.local_value, indent=2),
            _json(discrepancy.stripe_value, indent=2),
        )

    @admin.display(description="run", ordering="run")
    def run_link(self, discrepancy: Discrepancy) -> SafeString | str:
        return _run_link(discrepancy.run_id)

    @admin.display(description="last seen by")
    def last_seen_run_link(self, discrepancy: Discrepancy) -> SafeString | str:
        return _run_link(discrepancy.last_seen_run_id)

    def has_resolve_discrepancy_permission(self, request: HttpRequest) -> bool:
        # The rows are read-only, but resolving one may change a user's records (accept_stripe).
        return bool(request.user.has_perm("reconciliation.resolve_discrepancy"))

    def _resolve(self, request: HttpRequest, queryset: QuerySet[Discrepancy], action: str, note: str) -> None:
        done: list[str] = []
        refused: list[str] = []
        for discrepancy in queryset.select_related("project").order_by("pk"):
            try:
                discrepancy_resolve(
                    discrepancy_id=discrepancy.pk,
                    project=discrepancy.project,
                    action=action,
                    note=note,
                    actor=_actor(request),
                )
            except ServiceError as exc:  # not open any more, no comparer, Stripe refused or failed
                refused.append(f"#{discrepancy.pk}: {exc}")
            except ValidationError as exc:
                refused.append(f"#{discrepancy.pk}: {' '.join(exc.messages)}")
            else:
                done.append(f"#{discrepancy.pk}")
        if done:
            self.message_user(request, f"Resolved as {action} {len(done)}: {', '.join(done)}.", messages.SUCCESS)
        if refused:
            named = "; ".join(refused[:NAMED_REFUSALS])
            more = f" (and {len(refused) - NAMED_REFUSALS} more)" if len(refused) > NAMED_REFUSALS else ""
            self.message_user(request, f"Refused {len(refused)}: {named}{more}", messages.ERROR)

    @reason_action(description="Resolve selected: accept Stripe's side", permissions=["resolve_discrepancy"])
    def accept_stripe_selected(self, request: HttpRequest, queryset: QuerySet[Discrepancy], reason: str) -> None:
        self._resolve(request, queryset, Discrepancy.Action.ACCEPT_STRIPE, reason)

    @reason_action(description="Resolve selected: keep ours", permissions=["resolve_discrepancy"])
    def keep_local_selected(self, request: HttpRequest, queryset: QuerySet[Discrepancy], reason: str) -> None:
        self._resolve(request, queryset, Discrepancy.Action.KEEP_LOCAL, reason)

    @reason_action(description="Ignore selected", permissions=["resolve_discrepancy"])
    def ignore_selected(self, request: HttpRequest, queryset: QuerySet[Discrepancy], reason: str) -> None:
        self._resolve(request, queryset, Discrepancy.Action.IGNORE, reason)
