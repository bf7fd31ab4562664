"""Recovery runs and attempts for finance: read-only records, and a "run now" through the job's lock."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, reverse
from django.urls import path as url_path
from django.utils.html import format_html
from django.utils.http import urlencode

from apps.common.admin_columns import when
from apps.common.admin_evidence import ReadOnlyAdmin
from apps.common.audit import audit_record
from apps.common.jobs.lock import job_lock_held
from apps.common.jobs.task import job_run_now
from apps.recovery.models import RecoveryAttempt, RecoveryRun
from apps.recovery.worker import JOB

SHORT = 80


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def _short(text: str) -> str:
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"


def _session_link(session_id: int | None) -> str:
    if session_id is None:
        return "-"
    url = reverse("admin:checkout_checkoutsession_change", args=[session_id])
    return format_html('<a href="{}">session #{}</a>', url, session_id)


@admin.register(RecoveryRun)
class RecoveryRunAdmin(ReadOnlyAdmin[RecoveryRun]):
    # Written only by the recovery run itself: what each run found and did.
    list_display = (
        "id",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        *RecoveryRun.COUNT_NAMES,
        "error_count",
    )
    list_filter = ("status", "trigger")
    date_hierarchy = "started_at"
    actions = ["run_now"]
    fields = (
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "job_run_link",
        "counts_pretty",
        "errors_pretty",
        "attempts_link",
    )
    readonly_fields = fields

    def _count(self, obj: RecoveryRun, name: str) -> int:
        return int(obj.counts.get(name, 0)) if isinstance(obj.counts, dict) else 0

    @admin.display(description="examined")
    def examined(self, obj: RecoveryRun) -> int:
        return self._count(obj, "examined")

    @admin.display(description="expired")
    def expired(self, obj: RecoveryRun) -> int:
        return self._count(obj, "expired")

    @admin.display(description="abandoned")
    def abandoned(self, obj: RecoveryRun) -> int:
        return self._count(obj, "abandoned")

    @admin.display(description="recovered")
    def recovered(self, obj: RecoveryRun) -> int:
        return self._count(obj, "recovered")

    @admin.display(description="notified")
    def notified(self, obj: RecoveryRun) -> int:
        return self._count(obj, "notified")

    @admin.display(description="failed")
    def failed(self, obj: RecoveryRun) -> int:
        return self._count(obj, "failed")

    @admin.display(description="errors")
    def error_count(self, obj: RecoveryRun) -> int:
        return len(obj.errors) if isinstance(obj.errors, list) else 0

    @admin.display(description="counts")
    def counts_pretty(self, obj: RecoveryRun) -> str:
        return _pretty(obj.counts)

    @admin.display(description="errors")
    def errors_pretty(self, obj: RecoveryRun) -> str:
        if not obj.errors:
            return "-"
        return format_html("<pre>{}</pre>", "\n".join(str(error) for error in obj.errors))

    @admin.display(description="job run")
    def job_run_link(self, obj: RecoveryRun) -> str:
        if obj.job_run_id is None:
            return "-"
        url = reverse("admin:common_jobrun_change", args=[obj.job_run_id])
        return format_html('<a href="{}">job run #{}</a>', url, obj.job_run_id)

    @admin.display(description="attempts")
    def attempts_link(self, obj: RecoveryRun) -> str:
        url = f"{reverse('admin:recovery_recoveryattempt_changelist')}?{urlencode({'run__id__exact': obj.pk})}"
        return format_html('<a href="{}">this run\'s attempts</a>', url)

    def has_run_job_permission(self, request: HttpRequest) -> bool:
        # The same permission as the job policies' "run now": running a job is an ops decision.
        return bool(request.user.has_perm("common.run_job"))

    @admin.action(description="Run a recovery now (through the job's lock)", permissions=["run_job"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[RecoveryRun]) -> None:
        # The selection does not matter: a run takes up whatever is due. The list's button does the
        # same without a selection (an empty list offers no actions).
        self._run_now(request)

    def _run_now(self, request: HttpRequest) -> None:
        actor = f"admin:{request.user.get_username()}"
        # Told before sending: with a run in progress this start is recorded skipped, not queued.
        busy = job_lock_held(JOB)
        task_id = job_run_now(JOB, requested_by=actor)
        audit_record(actor=actor, action="job.run_now", target=JOB, after={"task_id": task_id, "was_running": busy})
        runs = f"{reverse('admin:common_jobrun_changelist')}?{urlencode({'job': JOB, 'trigger__exact': 'manual'})}"
        note = " A run is in progress, so this start will be recorded skipped." if busy else ""
        self.message_user(
            request,
            format_html('Sent {} to a worker (task {}).{} <a href="{}">Its manual runs</a>.', JOB, task_id, note, runs),
            messages.WARNING if busy else messages.SUCCESS,
        )

    # The "Run a recovery now" button of the list (templates/admin/recovery/recoveryrun/change_list.html).

    def get_urls(self) -> list[URLPattern]:
        run_now = url_path(
            "run-now/", self.admin_site.admin_view(self.run_now_view), name="recovery_recoveryrun_run_now"
        )
        return [run_now, *super().get_urls()]

    def run_now_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_run_job_permission(request):
            raise PermissionDenied
        self._run_now(request)
        return HttpResponseRedirect(reverse("admin:recovery_recoveryrun_changelist"))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {**(extra_context or {}), "can_run_job": self.has_run_job_permission(request)}
        return super().changelist_view(request, extra)


@admin.register(RecoveryAttempt)
class RecoveryAttemptAdmin(ReadOnlyAdmin[RecoveryAttempt]):
    # Written only by the recovery run; a failed notification is retried by later runs, not by hand.
    list_display = (
        "created",
        "session_link",
        "number",
        "method",
        "channel_text",
        "notification",
        "tries",
        "error_short",
        "run_link",
    )
    list_filter = ("notification_status", "channel", "method")
    search_fields = ("url", "notification_error", "session__stripe_session_id", "session__user_id")
    date_hierarchy = "created_at"
    created = when("created_at", "created")
    fields = (
        "session_link",
        "number",
        "method",
        "url",
        "new_session_link",
        "run",
        "channel_text",
        "notified_channels",
        "notification_status",
        "notification_tries",
        "notified_at",
        "error_pre",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="session", ordering="session")
    def session_link(self, obj: RecoveryAttempt) -> str:
        return _session_link(obj.session_id)

    @admin.display(description="new session")
    def new_session_link(self, obj: RecoveryAttempt) -> str:
        return _session_link(obj.new_session_id)

    @admin.display(description="notification", ordering="notification_status")
    def notification(self, obj: RecoveryAttempt) -> str:
        return obj.get_notification_status_display()

    @admin.display(description="tries", ordering="notification_tries")
    def tries(self, obj: RecoveryAttempt) -> int:
        return obj.notification_tries

    @admin.display(description="run", ordering="run")
    def run_link(self, obj: RecoveryAttempt) -> str:
        if obj.run_id is None:
            return "-"
        url = reverse("admin:recovery_recoveryrun_change", args=[obj.run_id])
        return format_html('<a href="{}">run #{}</a>', url, obj.run_id)

    @admin.display(description="channel", ordering="channel")
    def channel_text(self, obj: RecoveryAttempt) -> str:
        return obj.channel or "none"

    @admin.display(description="error")
    def error_short(self, obj: RecoveryAttempt) -> str:
        return _short(obj.notification_error)

    @admin.display(description="notification error")
    def error_pre(self, obj: RecoveryAttempt) -> str:
        return format_html("<pre>{}</pre>", obj.notification_error) if obj.notification_error else "-"
