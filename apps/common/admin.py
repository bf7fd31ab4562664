"""The audit log's admin (read-only), the periodic jobs' runs and policies, and repairs to
third-party admin pages we show finance and support staff.

dj-stripe 2.11 keeps most Stripe fields in its `stripe_data` JSON column, but some of its admins
still search model fields that no longer exist (a customer's email, an invoice's number), so a
search on those pages answered 500. Each such search field is pointed at the same key of
`stripe_data`. This module is imported by admin autodiscovery after dj-stripe's admin (djstripe
comes first in INSTALLED_APPS), so the admins it repairs are already registered.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import Case, CharField, F, Model, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.constants import LOOKUP_SEP
from django.db.models.functions import Cast, Concat
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, reverse
from django.urls import path as url_path
from django.utils.html import format_html
from django.utils.http import urlencode
from django_celery_beat.models import PeriodicTask

from apps.common.admin_columns import breakable_column, when
from apps.common.admin_evidence import EvidenceAdmin, ReadOnlyAdmin
from apps.common.admin_export import CsvExportMixin
from apps.common.audit import audit_record
from apps.common.jobs.lock import job_lock_held
from apps.common.jobs.task import job_run_now
from apps.common.models import AuditLog, JobPolicy, JobRun
from billing_service.beat_schedule import BEAT_SCHEDULE, JobPolicySpec, scheduled_task


def _resolves(model: type[Model], path: str) -> bool:
    first = path.lstrip("^=@").split(LOOKUP_SEP, 1)[0]
    try:
        model._meta.get_field(first)
    except FieldDoesNotExist:
        return False
    return True


def djstripe_search_fields_repair() -> list[str]:
    """Rewrites dj-stripe search fields that name no field; returns what it rewrote, for the tests."""
    rewritten: list[str] = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "djstripe" or not _has_stripe_data(model):
            continue
        fields = []
        for path in model_admin.search_fields:
            if _resolves(model, path):
                fields.append(path)
            else:
                bare = path.lstrip("^=@")  # keep a search operator prefix in front
                fields.append(f"{path[: len(path) - len(bare)]}stripe_data{LOOKUP_SEP}{bare}")
                rewritten.append(f"{model._meta.label_lower}.{path}")
        # On the class (one instance per class, registered once): search_fields is a class attribute.
        type(model_admin).search_fields = tuple(fields)
    return rewritten


def _has_stripe_data(model: type[Model]) -> bool:
    return _resolves(model, "stripe_data")


djstripe_search_fields_repair()

# The app list down the left of every page takes 300 px of a 1400 px window from the lists finance and
# support scan; the index (Home, in every page's breadcrumbs) lists the same models.
admin.site.enable_nav_sidebar = False


@admin.register(AuditLog)
class AuditLogAdmin(CsvExportMixin, ReadOnlyAdmin[AuditLog]):
    # Written only by the services that make the changes it records (grants, revokes, replays).
    export_fields = ("id", "occurred_at", "actor", "action", "target", "project__slug", "reason", "before", "after")
    list_display = ("occurred", "staff", "action", "target", "project", "reason")
    # Read-only for every role, superusers included (ReadOnlyAdmin): filtered by who, what and which project,
    # searched by the object ("grant #12", a user id, an event id) or the actor.
    list_filter = ("action", "actor", "project")
    search_fields = ("target", "actor", "reason")
    list_select_related = ("project",)
    date_hierarchy = "occurred_at"

    occurred = when("occurred_at", "occurred")
    staff = breakable_column("actor", "actor")


# --- Periodic jobs -------------------------------------------------------------------------------

POLICY_FIELDS = (
    "max_attempts",
    "base_backoff_seconds",
    "backoff_multiplier",
    "max_backoff_seconds",
    "jitter_seconds",
    "timeout_seconds",
)
OUTCOME_COLOURS: dict[str, str] = {
    JobRun.Outcome.SUCCEEDED: "#2e7d32",
    JobRun.Outcome.FAILED: "#c62828",
    JobRun.Outcome.RUNNING: "#1565c0",
    JobRun.Outcome.SKIPPED: "#757575",
}
SHORT_ERROR = 80


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def _runs_url(job: str, **filters: str) -> str:
    return f"{reverse('admin:common_jobrun_changelist')}?{urlencode({'job': job, **filters})}"


def _policy_text(policy: JobPolicy | JobPolicySpec) -> str:
    timeout = f"timeout {policy.timeout_seconds}s"
    if policy.max_attempts == 1:
        return f"1 attempt, no retry; {timeout}"
    multiplier = format(policy.backoff_multiplier.normalize(), "f")  # 2, not 2.00 or 1E+1
    return (
        f"{policy.max_attempts} attempts; backoff {policy.base_backoff_seconds}s x{multiplier} "
        f"up to {policy.max_backoff_seconds}s, plus 0-{policy.jitter_seconds}s jitter; {timeout}"
    )


def _edited_fields(row: JobPolicy) -> list[str]:
    """The fields an operator changed from the declaration (what install_beat_schedule --reset undoes)."""
    try:
        declared = scheduled_task(row.job).policy
    except KeyError:
        return []
    return [name for name in POLICY_FIELDS if getattr(row, name) != getattr(declared, name)]


class JobListFilter(admin.SimpleListFilter):
    # Every declared job is offered, including one that has not run yet; ?job= is also the link
    # from each policy's "runs" column.
    title = "job"
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(entry.name, entry.name) for entry in BEAT_SCHEDULE]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(job=self.value()) if self.value() else queryset


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin[JobRun]):
    # Written only by the job runner: the record of what each start did, read-only for everyone.
    list_display = (
        "job",
        "trigger",
        "attempt",
        "outcome_coloured",
        "started_at",
        "duration",
        "error_short",
        "retry_at",
        "requested_by",
    )
    list_filter = (JobListFilter, "outcome", "trigger")
    search_fields = ("job", "error", "task_id")
    date_hierarchy = "started_at"
    fields = (
        "job",
        "trigger",
        "attempt",
        "tick",
        "outcome",
        "started_at",
        "finished_at",
        "duration",
        "retry_at",
        "requested_by",
        "task_id",
        "error_pre",
        "summary_pretty",
    )
    readonly_fields = fields

    @admin.display(description="outcome", ordering="outcome")
    def outcome_coloured(self, obj: JobRun) -> str:
        colour = OUTCOME_COLOURS.get(obj.outcome, "inherit")
        return format_html('<strong style="color: {}">{}</strong>', colour, obj.outcome)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj: JobRun) -> str:
        return "-" if obj.duration_ms is None else f"{obj.duration_ms / 1000:.2f} s"

    @admin.display(description="error")
    def error_short(self, obj: JobRun) -> str:
        error = obj.error
        return error if len(error) <= SHORT_ERROR else error[: SHORT_ERROR - 1] + "…"

    @admin.display(description="error")
    def error_pre(self, obj: JobRun) -> str:
        return format_html("<pre>{}</pre>", obj.error) if obj.error else "-"

    @admin.display(description="summary")
    def summary_pretty(self, obj: JobRun) -> str:
        return _pretty(obj.summary)


def _periodic_task(expression: Any) -> Subquery:
    """A value of the django-celery-beat task of the same name as the policy's job (None without one)."""
    task = PeriodicTask.objects.filter(name=OuterRef("job")).annotate(value=expression)
    return Subquery(task.values("value")[:1])


_SCHEDULE_TEXT = Case(
    When(
        interval__isnull=False,
        then=Concat(Value("every "), Cast("interval__every", CharField()), Value(" "), "interval__period"),
    ),
    When(
        crontab__isnull=False,
        then=Concat(
            "crontab__minute",
            Value(" "),
            "crontab__hour",
            Value(" "),
            "crontab__day_of_month",
            Value(" "),
            "crontab__month_of_year",
            Value(" "),
            "crontab__day_of_week",
            Value(" "),
            Cast("crontab__timezone", CharField()),  # a TimeZoneField, stored as its name
        ),
    ),
    # An operator may switch a task to a solar or clocked schedule; its own page says which.
    default=Value("other (see its task)"),
    output_field=CharField(),
)


def _last_run(field: str) -> Subquery:
    # A skipped start did not run the job (its tick or lock was taken): the last run that did is
    # what the operator asks about. Skipped starts are in the runs list.
    runs = JobRun.objects.filter(job=OuterRef("job")).exclude(outcome=JobRun.Outcome.SKIPPED)
    return Subquery(runs.order_by("-started_at", "-id").values(field)[:1])


@admin.register(JobPolicy)
class JobPolicyAdmin(EvidenceAdmin[JobPolicy]):
    """Each declared job's retry and timeout policy, editable without a deploy; never added or deleted here.

    install_beat_schedule creates the rows and keeps an edit made here unless --reset.
    """

    list_display = ("job", "policy", "schedule", "enabled", "last_run", "runs")
    actions = ["run_now"]
    fieldsets = (
        (None, {"fields": ("job", "schedule", "enabled", "last_run", "runs")}),
        (
            "Policy",
            {
                "fields": POLICY_FIELDS,
                "description": (
                    "Read at each run: an edit applies from the next start on. "
                    "manage.py install_beat_schedule keeps it; install_beat_schedule --reset puts back the declared "
                    "values (billing_service/beat_schedule.py)."
                ),
            },
        ),
        (None, {"fields": ("declared", "updated_at")}),
    )
    readonly_fields = ("job", "schedule", "enabled", "last_run", "runs", "declared", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Rows come from billing_service/beat_schedule.py through install_beat_schedule: a policy
        # for a job nobody declared would govern nothing.
        return False

    def has_run_job_permission(self, request: HttpRequest) -> bool:
        # The "ops role": a separate permission, so that changing a policy and running a job now
        # can be given apart (superusers hold it).
        return bool(request.user.has_perm("common.run_job"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobPolicy]:
        # One query for the whole list: the schedule and the last run come as subqueries.
        return (
            super()
            .get_queryset(request)
            .annotate(
                task_pk=_periodic_task(F("pk")),
                task_enabled=_periodic_task(F("enabled")),
                task_schedule=_periodic_task(_SCHEDULE_TEXT),
                last_outcome=_last_run("outcome"),
                last_started_at=_last_run("started_at"),
            )
        )

    @admin.display(description="policy")
    def policy(self, obj: JobPolicy) -> str:
        edited = _edited_fields(obj)
        text = _policy_text(obj)
        return f"{text} (edited: {', '.join(edited)})" if edited else text

    @admin.display(description="schedule")
    def schedule(self, obj: JobPolicy) -> str:
        task_pk = getattr(obj, "task_pk", None)
        if task_pk is None:
            return "not installed (run manage.py install_beat_schedule)"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task_pk])
        return format_html('<a href="{}">{}</a>', url, getattr(obj, "task_schedule", ""))

    @admin.display(description="enabled", boolean=True)
    def enabled(self, obj: JobPolicy) -> bool | None:
        enabled: bool | None = getattr(obj, "task_enabled", None)
        return enabled

    @admin.display(description="last run", ordering="last_started_at")
    def last_run(self, obj: JobPolicy) -> str:
        outcome = getattr(obj, "last_outcome", None)
        if outcome is None:
            return "never"
        colour = OUTCOME_COLOURS.get(outcome, "inherit")
        started = getattr(obj, "last_started_at", None)
        return format_html(
            '<strong style="color: {}">{}</strong> {}', colour, outcome, f"{started:%Y-%m-%d %H:%M:%S %Z}"
        )

    @admin.display(description="runs")
    def runs(self, obj: JobPolicy) -> str:
        return format_html('<a href="{}">runs</a>', _runs_url(obj.job))

    @admin.display(description="declared in beat_schedule.py")
    def declared(self, obj: JobPolicy) -> str:
        try:
            return _policy_text(scheduled_task(obj.job).policy)
        except KeyError:
            return "not declared any more: this job is not scheduled"

    @admin.action(description="Run now (through the job's lock)", permissions=["run_job"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[JobPolicy]) -> None:
        for job in queryset.values_list("job", flat=True):
            self._run_now(request, job)

    def _run_now(self, request: HttpRequest, job: str) -> None:
        actor = f"admin:{request.user.get_username()}"
        try:
            scheduled_task(job)
        except KeyError:
            self.message_user(request, f"{job} is not declared in beat_schedule.py: not run.", messages.ERROR)
            return
        # Told before sending: with a run in progress this start is recorded skipped, not queued.
        busy = job_lock_held(job)
        task_id = job_run_now(job, requested_by=actor)
        audit_record(actor=actor, action="job.run_now", target=job, after={"task_id": task_id, "was_running": busy})
        note = " It is running now: unless that run ends first, this start will be recorded skipped." if busy else ""
        self.message_user(
            request,
            format_html(
                'Sent {} to a worker as a manual run (task {}).{} <a href="{}">Its manual runs</a>.',
                job,
                task_id,
                note,
                _runs_url(job, trigger__exact=JobRun.Trigger.MANUAL),
            ),
            messages.WARNING if busy else messages.SUCCESS,
        )

    # The "Run now" button of the change page (templates/admin/common/jobpolicy/change_form.html).

    def get_urls(self) -> list[URLPattern]:
        run_now = url_path(
            "<path:object_id>/run-now/",
            self.admin_site.admin_view(self.run_now_view),
            name="common_jobpolicy_run_now",
        )
        return [run_now, *super().get_urls()]

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not (self.has_run_job_permission(request) and self.has_view_or_change_permission(request)):
            raise PermissionDenied
        policy = self.get_object(request, unquote(object_id))
        if policy is None:
            raise Http404("no such job policy")
        self._run_now(request, policy.job)
        return HttpResponseRedirect(reverse("admin:common_jobpolicy_change", args=[policy.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "can_run_job": self.has_run_job_permission(request)}
        return super().change_view(request, object_id, form_url, extra)
