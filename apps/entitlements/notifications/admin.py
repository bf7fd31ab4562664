"""Notification endpoints, notifications and deliveries in the admin.

- Endpoints: added, changed, enabled, disabled, rotated and deleted through the services (validated
  and audited as the API is). A secret is shown once, in the message of the page that made it (the
  add page, the rotate action), and is in no form and no page afterwards. A disabled endpoint is red
  in the list and on its app's page, so that the app's owners see it.
- Notifications and deliveries: read-only (the outbox is evidence of what was sent), with replay
  actions that need a typed reason and the change permission, and are audited.

Loaded by apps/entitlements/admin.py.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.common.admin_actions import reason_action
from apps.common.admin_columns import compact_datetime, when
from apps.common.admin_evidence import ReadOnlyAdmin
from apps.entitlements.notifications import selectors, services
from apps.entitlements.notifications.models import Delivery, Notification, NotificationEndpoint
from apps.entitlements.notifications.outbox import NOTIFICATION_TYPES
from apps.projects.admin import AppAdmin
from apps.projects.models import App

# How much of a receiver's answer a table cell shows (the row keeps up to RESPONSE_BODY_LIMIT).
BODY_PREVIEW = 200
_RED = "color: #ba2121; font-weight: bold"
_ORANGE = "color: #b26b00"
_GREEN = "color: #2e7d32"


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def endpoint_state(endpoint: NotificationEndpoint) -> SafeString:
    """Disabled (red, since when and why), failing (orange, since when) or OK (green)."""
    if not endpoint.enabled or endpoint.disabled_at is not None:
        since = compact_datetime(endpoint.disabled_at) if endpoint.disabled_at else "-"
        reason = endpoint.disabled_reason or "disabled"
        return format_html('<span style="{}">Disabled</span> {}: {}', _RED, since, reason)
    if endpoint.failing_since is not None:
        return format_html(
            '<span style="{}">Failing since</span> {}', _ORANGE, compact_datetime(endpoint.failing_since)
        )
    return format_html('<span style="{}">OK</span>', _GREEN)


def _types(endpoint: NotificationEndpoint) -> str:
    return ", ".join(endpoint.event_types) or "every type"


def _delivery_status(delivery: Delivery) -> SafeString:
    colors = {Delivery.Status.FAILED.value: _RED, Delivery.Status.PENDING.value: _ORANGE}
    color = colors.get(str(delivery.status), _GREEN)
    return format_html('<span style="{}">{}</span>', color, delivery.status)


def attempt_table(delivery: Delivery) -> SafeString | str:
    """Every attempt: when, the answer's status (or the error), how long, the start of the body."""
    attempts = list(delivery.attempt_log.all())
    if not attempts:
        return "-"
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td><code>{}</code></td></tr>",
        (
            (
                a.number,
                compact_datetime(a.attempted_at),
                a.status_code if a.status_code is not None else a.error or "-",
                a.duration_ms,
                a.response_body[:BODY_PREVIEW],
            )
            for a in attempts
        ),
    )
    return format_html(
        "<table><tr><th>#</th><th>at</th><th>answer</th><th>took</th><th>body (start)</th></tr>{}</table>", rows
    )


# --- endpoints -----------------------------------------------------------------------------------


class NotificationEndpointForm(forms.ModelForm):  # type: ignore[type-arg]
    """The secrets are no field of this form: they are made by the services and shown once, in a message."""

    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in NOTIFICATION_TYPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None checked: every type.",
    )

    class Meta:
        model = NotificationEndpoint
        fields = ("app", "url", "event_types", "enabled")

    def clean(self) -> dict[str, Any]:
        # The services' checks, so that a refusal is a form error rather than a 500 in save_model.
        data: dict[str, Any] = super().clean() or {}
        try:
            services.endpoint_validate(url=data.get("url"), event_types=data.get("event_types"))
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    self.add_error(field if field in self.fields else None, error)
        app = data.get("app")
        full = app is not None and selectors.endpoint_count(app_id=app.pk) >= services.ENDPOINTS_PER_APP_MAX
        if self.instance.pk is None and full:
            self.add_error("app", services.TooManyEndpoints.default_detail)
        return data


@admin.register(NotificationEndpoint)
class NotificationEndpointAdmin(admin.ModelAdmin[NotificationEndpoint]):
    form = NotificationEndpointForm
    list_display = ("url", "app", "types", "enabled", "failing", "state")
    list_filter = ("enabled", ("disabled_at", admin.EmptyFieldListFilter), "app__project")
    search_fields = ("url", "app__name")
    list_select_related = ("app__project",)
    actions = ["rotate_secret", "enable_selected", "disable_selected"]
    failing = when("failing_since", "failing since")
    _CHANGE_FIELDS = ("app", "url", "event_types", "enabled")
    _STATE_FIELDS = (
        "state",
        "failing_since",
        "disabled_at",
        "disabled_reason",
        "secret_rotation",
        "created_at",
        "updated_at",
    )

    @admin.display(description="types")
    def types(self, obj: NotificationEndpoint) -> str:
        return _types(obj)

    @admin.display(description="state")
    def state(self, obj: NotificationEndpoint) -> SafeString:
        return endpoint_state(obj)

    @admin.display(description="secret")
    def secret_rotation(self, obj: NotificationEndpoint) -> str:
        # Whether a rotation is in its overlap window; never a secret.
        if obj.previous_secret and obj.previous_secret_expires_at is not None:
            return f"Rotated: the previous secret also signs until {obj.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC."
        return "Set (shown once, when the endpoint was added or its secret rotated)."

    def get_fields(self, request: HttpRequest, obj: NotificationEndpoint | None = None) -> Any:
        return self._CHANGE_FIELDS if obj is None else (*self._CHANGE_FIELDS, *self._STATE_FIELDS)

    def get_readonly_fields(self, request: HttpRequest, obj: NotificationEndpoint | None = None) -> Any:
        # The app is chosen once: an endpoint belongs to its app for good.
        return () if obj is None else ("app", *self._STATE_FIELDS)

    def save_model(self, request: HttpRequest, obj: NotificationEndpoint, form: Any, change: bool) -> None:
        if change:
            services.endpoint_update(
                endpoint=obj, actor=_actor(request), url=obj.url, event_types=obj.event_types, enabled=obj.enabled
            )
            return
        created = services.endpoint_create(
            app=obj.app, url=obj.url, event_types=obj.event_types, enabled=obj.enabled, actor=_actor(request)
        )
        # The admin's own log entry and redirect read the saved row.
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
        _show_secret(request, created, "Signing secret")

    def delete_model(self, request: HttpRequest, obj: NotificationEndpoint) -> None:
        services.endpoint_delete(endpoint=obj, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[NotificationEndpoint]) -> None:
        for endpoint in queryset.select_related("app"):
            services.endpoint_delete(endpoint=endpoint, actor=_actor(request))

    @admin.action(
        description="Rotate the signing secret (the old one signs during the overlap)", permissions=["change"]
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[NotificationEndpoint]) -> None:
        for endpoint in queryset:
            rotated = services.endpoint_secret_rotate(endpoint=endpoint, actor=_actor(request))
            _show_secret(request, rotated, "New signing secret")

    @admin.action(description="Enable selected endpoints (waiting notifications are sent)", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[NotificationEndpoint]) -> None:
        for endpoint in queryset:
            services.endpoint_update(endpoint=endpoint, actor=_actor(request), enabled=True)
        self.message_user(request, f"Enabled {queryset.count()} endpoint(s).", messages.SUCCESS)

    @admin.action(description="Disable selected endpoints (notifications wait)", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[NotificationEndpoint]) -> None:
        for endpoint in queryset:
            services.endpoint_update(endpoint=endpoint, actor=_actor(request), enabled=False)
        self.message_user(request, f"Disabled {queryset.count()} endpoint(s).", messages.SUCCESS)


def _show_secret(request: HttpRequest, endpoint: NotificationEndpoint, what: str) -> None:
    overlap = ""
    if endpoint.previous_secret_expires_at is not None:
        overlap = f" The previous secret also signs until {endpoint.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC."
    messages.success(
        request,
        format_html(
            "{} for <b>{}</b>: <code>{}</code> — copy it now and give it to the app's owners; it is not shown again.{}",
            what,
            endpoint,
            endpoint.secret,
            overlap,
        ),
    )


class AppWithEndpointsAdmin(AppAdmin):
    """The app's page, with its notification endpoints and their state (a disabled one in red), so that
    the app's owners see it. Registered from here, so that apps.projects (which every app builds on)
    does not depend on the entitlements app. A read-only field, not an inline: an inline would add a
    formset that every save of the app's form would have to carry."""

    def get_readonly_fields(self, request: HttpRequest, obj: App | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and request.user.has_perm("entitlements.view_notificationendpoint"):
            return (*fields, "notification_endpoints")
        return fields

    @admin.display(description="notification endpoints")
    def notification_endpoints(self, obj: App) -> SafeString | str:
        endpoints = list(selectors.endpoint_list(app_id=obj.pk))
        if not endpoints:
            return "None."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:entitlements_notificationendpoint_change", args=[e.pk]),
                    e.url,
                    _types(e),
                    endpoint_state(e),
                )
                for e in endpoints
            ),
        )
        return format_html("<table><tr><th>URL</th><th>types</th><th>state</th></tr>{}</table>", rows)


if admin.site.is_registered(App):
    admin.site.unregister(App)
admin.site.register(App, AppWithEndpointsAdmin)


# --- notifications and deliveries ----------------------------------------------------------------


class DeliveryInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Delivery
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("endpoint", "status_colored", "attempts", "last_status_code", "last_error", "next_attempt", "log")
    readonly_fields = fields

    @admin.display(description="status")
    def status_colored(self, obj: Delivery) -> SafeString:
        return _delivery_status(obj)

    @admin.display(description="next attempt")
    def next_attempt(self, obj: Delivery) -> SafeString | str:
        return compact_datetime(obj.next_attempt_at) if obj.status == Delivery.Status.PENDING else "-"

    @admin.display(description="attempts log")
    def log(self, obj: Delivery) -> SafeString | str:
        return attempt_table(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).select_related("endpoint__app__project").prefetch_related("attempt_log")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _pretty(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin[Notification]):
    list_display = ("id", "type", "project", "user_id", "created", "deliveries_summary")
    list_filter = ("project", "type", "created_at")
    search_fields = ("=id", "=user_id")
    list_select_related = ("project",)
    date_hierarchy = "created_at"
    created = when("created_at", "created")
    fields = ("id", "project", "type", "user_id", "created_at", "data_pretty")
    readonly_fields = fields
    inlines = [DeliveryInline]
    actions = ["replay_selected"]

    @admin.display(description="data")
    def data_pretty(self, obj: Notification) -> SafeString:
        return _pretty(obj.data)

    @admin.display(description="deliveries")
    def deliveries_summary(self, obj: Notification) -> str:
        counts = (
            ("delivered", getattr(obj, "n_delivered", 0)),
            ("pending", getattr(obj, "n_pending", 0)),
            ("failed", getattr(obj, "n_failed", 0)),
        )
        return ", ".join(f"{n} {name}" for name, n in counts if n) or "-"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        # The list's counts in its one query, not one query per row.
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_delivered=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.DELIVERED)),
                n_pending=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.PENDING)),
                n_failed=Count("deliveries", filter=Q(deliveries__status=Delivery.Status.FAILED)),
            )
        )

    def has_replay_permission(self, request: HttpRequest) -> bool:
        # The rows stay read-only; a replay queues deliveries again, which needs the change permission.
        return bool(request.user.has_perm("entitlements.change_notification"))

    @reason_action(description="Replay selected notifications", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[Notification], reason: str) -> None:
        try:
            outcome = services.notifications_replay(
                project_id=None,
                actor=_actor(request),
                notification_ids=list(queryset.values_list("pk", flat=True)),
                reason=reason,
            )
        except services.ReplayTooLarge as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(
            request,
            f"Replayed {outcome.notifications} notification(s): {outcome.deliveries} deliveries queued "
            f"({outcome.created} to endpoints that had none).",
            messages.SUCCESS,
        )


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin[Delivery]):
    list_display = ("id", "notification", "endpoint", "status_colored", "attempts", "last_status_code", "created")
    list_filter = ("status", "endpoint", "created_at")
    search_fields = ("=notification__id",)
    list_select_related = ("notification", "endpoint__app__project")
    date_hierarchy = "created_at"
    created = when("created_at", "created")
    fields = (
        "notification",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "failed_at",
        "created_at",
        "log",
    )
    readonly_fields = fields
    actions = ["replay_selected"]

    @admin.display(description="status", ordering="status")
    def status_colored(self, obj: Delivery) -> SafeString:
        return _delivery_status(obj)

    @admin.display(description="attempts log")
    def log(self, obj: Delivery) -> SafeString | str:
        return attempt_table(obj)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("entitlements.change_delivery"))

    @reason_action(description="Replay selected deliveries", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[Delivery], reason: str) -> None:
        count = services.deliveries_replay(
            delivery_ids=list(queryset.values_list("pk", flat=True)), actor=_actor(request), reason=reason
        )
        self.message_user(request, f"Queued {count} deliveries again.", messages.SUCCESS)
