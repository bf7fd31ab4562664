"""The ledger and replay runs in the admin: read-only, with replay actions that go through the service."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apps.common.admin_actions import reason_action
from apps.common.admin_columns import breakable_column, short_id, when
from apps.common.admin_evidence import ReadOnlyAdmin
from apps.webhooks.models import ProcessorEvent, ReplayRun
from apps.webhooks.replays import ReplayTooLarge, replay_run


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(ProcessorEvent)
class ProcessorEventAdmin(ReadOnlyAdmin[ProcessorEvent]):
    # The ledger is evidence (what Stripe sent, and what we did with it): read-only for everyone.
    # A replay re-runs handlers and records its outcome on the row; no one edits what Stripe sent.
    # received_at is on the row's page: the list is read in Stripe's order (created).
    list_display = ("event", "event_type", "status", "attempts", "project", "user_id", "created_at")
    # user_id has as many values as there are customers: filtered as present/absent, found by search.
    list_filter = ("status", "type", "project", ("user_id", admin.EmptyFieldListFilter))
    search_fields = ("stripe_event_id", "=user_id")
    list_select_related = ("project",)
    date_hierarchy = "created"
    event = short_id("stripe_event_id", "event")
    event_type = breakable_column("type", "type")
    created_at = when("created", "created")
    actions = ["replay_selected", "dry_run_selected"]
    fields = (
        "stripe_event_id",
        "type",
        "status",
        "attempts",
        "project",
        "user_id",
        "api_version",
        "livemode",
        "created",
        "received_at",
        "claimed_at",
        "processed_at",
        "note",
        "changes_pretty",
        "last_error_pre",
        "payload_pretty",
        "headers_pretty",
    )
    readonly_fields = fields

    @admin.display(description="payload")
    def payload_pretty(self, obj: ProcessorEvent) -> str:
        return _pretty(obj.payload)

    @admin.display(description="headers")
    def headers_pretty(self, obj: ProcessorEvent) -> str:
        return _pretty(obj.headers)

    @admin.display(description="changes")
    def changes_pretty(self, obj: ProcessorEvent) -> str:
        return _pretty(obj.changes)

    @admin.display(description="last error")
    def last_error_pre(self, obj: ProcessorEvent) -> str:
        return format_html("<pre>{}</pre>", obj.last_error) if obj.last_error else "-"

    def _replay(self, request: HttpRequest, queryset: QuerySet[ProcessorEvent], *, dry_run: bool, reason: str) -> None:
        event_ids = list(queryset.values_list("stripe_event_id", flat=True))
        try:
            run = replay_run(
                project_id=None,
                requested_by=f"admin:{request.user.get_username()}",
                event_ids=event_ids,
                dry_run=dry_run,
                reason=reason,
            )
        except ReplayTooLarge as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        counts = ", ".join(f"{name} {n}" for name, n in run.counts.items())
        level = messages.WARNING if run.status == ReplayRun.Status.FAILED else messages.SUCCESS
        self.message_user(request, f"{'Dry-run replay' if dry_run else 'Replay'} #{run.pk}: {counts}.", level)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        # Ledger rows are read-only in the admin, but a real replay changes state: it needs the
        # change permission on the ledger (superusers have it), not just the right to look.
        return bool(request.user.has_perm("webhooks.change_processorevent"))

    # Both ask for a reason: a dry run is recorded too (a ReplayRun row and an audit entry).
    @reason_action(description="Replay selected events", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[ProcessorEvent], reason: str) -> None:
        self._replay(request, queryset, dry_run=False, reason=reason)

    @reason_action(description="Dry-run replay of selected events", permissions=["view"])
    def dry_run_selected(self, request: HttpRequest, queryset: QuerySet[ProcessorEvent], reason: str) -> None:
        self._replay(request, queryset, dry_run=True, reason=reason)


@admin.register(ReplayRun)
class ReplayRunAdmin(ReadOnlyAdmin[ReplayRun]):
    list_display = ("id", "created_at", "requested_by", "project", "dry_run", "status", "finished_at")
    list_filter = ("status", "dry_run", "project")
    search_fields = ("requested_by", "reason")
    fields = (
        "project",
        "requested_by",
        "reason",
        "dry_run",
        "status",
        "error",
        "created_at",
        "finished_at",
        "params_pretty",
        "counts_pretty",
        "results_pretty",
    )
    readonly_fields = fields

    @admin.display(description="params")
    def params_pretty(self, obj: ReplayRun) -> str:
        return _pretty(obj.params)

    @admin.display(description="counts")
    def counts_pretty(self, obj: ReplayRun) -> str:
        return _pretty(obj.counts)

    @admin.display(description="results")
    def results_pretty(self, obj: ReplayRun) -> str:
        return _pretty(obj.results)
