"""Admin for projects, apps and keys. Saves go through the services so that cached key
resolutions are invalidated; a new key is shown once, in the page that created it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apps.common.admin_evidence import EvidenceAdmin
from apps.projects import services
from apps.projects.models import ApiKey, App, Project, Scope


def _show_new_key(request: HttpRequest, raw: str, app: App) -> None:
    messages.warning(
        request,
        format_html(
            "New API key for <b>{}</b>: <code>{}</code> — copy it now; it is stored only as a hash and "
            "cannot be shown again.",
            app,
            raw,
        ),
    )


@admin.register(Project)
class ProjectAdmin(EvidenceAdmin[Project]):
    """Projects are deactivated, never deleted: their slug tags Stripe objects, and every money row,
    grant and audit entry points at them."""

    list_display = (
        "slug",
        "name",
        "active",
        "past_due_grace_days",
        "revoke_on_partial_refund",
        "allow_multiple_subscriptions",
        "created_at",
    )
    list_filter = ("active", "revoke_on_partial_refund", "allow_multiple_subscriptions")
    search_fields = ("slug", "name")
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Project | None = None) -> tuple[str, ...]:
        # The slug is the `project` metadata on Stripe objects; renaming it would orphan them.
        return ("slug", *self.readonly_fields) if obj is not None else self.readonly_fields

    def get_prepopulated_fields(self, request: HttpRequest, obj: Project | None = None) -> dict[str, Sequence[str]]:
        # Only while adding: a read-only slug is not a form field, and the admin raises KeyError
        # (a 500 on every change page) when asked to prepopulate a field the form lacks.
        return {"slug": ("name",)} if obj is None else {}

    def save_model(self, request: HttpRequest, obj: Project, form: Any, change: bool) -> None:
        if change:
            services.project_update(
                project=obj, name=obj.name, allowed_redirect_prefixes=obj.allowed_redirect_prefixes, active=obj.active
            )
        else:
            super().save_model(request, obj, form, change)


class AppForm(forms.ModelForm):  # type: ignore[type-arg]
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple, required=False)

    class Meta:
        model = App
        fields = ("project", "name", "active", "scopes", "rate_limit")


class ApiKeyInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("prefix", "label", "created_at", "created_by", "last_used_at", "revoked_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keys are created with the "Add API key" page, which shows the key once


@admin.register(App)
class AppAdmin(EvidenceAdmin[App]):
    """Apps are deactivated, never deleted: deleting one would delete its keys' history with it."""

    form = AppForm
    list_display = ("name", "project", "active", "scope_list", "created_at")
    list_filter = ("active", "project")
    search_fields = ("name", "project__slug")
    inlines = [ApiKeyInline]
    actions = ["issue_key"]

    @admin.display(description="scopes")
    def scope_list(self, obj: App) -> str:
        return ", ".join(obj.scopes)

    def save_model(self, request: HttpRequest, obj: App, form: Any, change: bool) -> None:
        if change:
            services.app_update(app=obj, name=obj.name, scopes=obj.scopes, active=obj.active, rate_limit=obj.rate_limit)
            return
        super().save_model(request, obj, form, change)
        _, raw = services.api_key_create(app=obj, label="initial", created_by=request.user.get_username())
        _show_new_key(request, raw, obj)

    def has_issue_key_permission(self, request: HttpRequest) -> bool:
        # Issuing a key is adding one: the same permission as the "Add API key" page.
        return bool(request.user.has_perm("projects.add_apikey"))

    # Without `permissions`, an action is open to anyone who may view the list: a view-only
    # account could mint keys.
    @admin.action(description="Issue a new API key (old keys stay live)", permissions=["issue_key"])
    def issue_key(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        for app in queryset:
            _, raw = services.api_key_create(app=app, label="admin", created_by=request.user.get_username())
            _show_new_key(request, raw, app)


class ApiKeyAddForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ApiKey
        fields = ("app", "label")


@admin.register(ApiKey)
class ApiKeyAdmin(EvidenceAdmin[ApiKey]):
    """Keys are revoked, never deleted, so that the key's history (who made it, when it was last used) stays."""

    list_display = ("prefix", "app", "label", "created_at", "last_used_at", "revoked_at")
    list_filter = ("app__project", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("prefix", "label", "app__name")
    actions = ["revoke"]
    readonly_fields = ("app", "label", "prefix", "created_at", "created_by", "last_used_at", "revoked_at")

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return ("app", "label") if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # every field of a stored key is read-only
        key, raw = services.api_key_create(app=obj.app, label=obj.label, created_by=request.user.get_username())
        obj.pk = key.pk
        obj.prefix = key.prefix
        _show_new_key(request, raw, key.app)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(key=key)
            count += 1
        self.message_user(request, f"Revoked {count} key(s). They fail from the next request on.")
