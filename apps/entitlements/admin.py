"""Support staff's admin: grants (with a reason, audited), and read-only views of everything else."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import ValidationError

from apps.entitlements import grants
from apps.entitlements.models import AuditLog, Entitlement, Grant, Purchase, RevenueEntry, SubscriptionRecord


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Records written by the service itself: visible, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GrantForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Grant
        fields = ("project", "user_id", "feature_code", "reason", "valid_from", "valid_to")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        project, code = data.get("project"), data.get("feature_code")
        if project is not None and code and code not in grants.known_feature_codes(project):
            self.add_error("feature_code", f"Unknown feature code {code!r} for {project}.")
        return data


class RevokeActionForm(ActionForm):
    reason = forms.CharField(required=False, label="Reason (required to revoke)")


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin[Grant]):
    form = GrantForm
    action_form = RevokeActionForm
    actions = ["revoke"]
    list_display = ("user_id", "feature_code", "project", "valid_from", "valid_to", "revoked_at", "granted_by")
    list_filter = ("project", "feature_code", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("user_id", "feature_code", "reason", "granted_by")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Grant | None = None) -> Any:
        if obj is None:
            return ()
        return [f.name for f in Grant._meta.fields]

    def has_delete_permission(self, request: HttpRequest, obj: Grant | None = None) -> bool:
        return False  # revoke instead, so that the history and the audit log stay

    def save_model(self, request: HttpRequest, obj: Grant, form: Any, change: bool) -> None:
        if change:
            return
        try:
            created = grants.grant_create(
                project=obj.project,
                user_id=obj.user_id,
                feature_code=obj.feature_code,
                granted_by=request.user.get_username(),
                reason=obj.reason,
                valid_from=obj.valid_from,
                valid_to=obj.valid_to,
            )
        except ValidationError as exc:
            raise DjangoValidationError(str(exc.detail)) from None
        obj.pk = created.pk

    @admin.action(description="Revoke selected grants (give a reason)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        reason = request.POST.get("reason", "").strip()
        if not reason:
            self.message_user(request, "Give a reason to revoke grants.", level=messages.ERROR)
            return
        count = 0
        for grant in queryset.filter(revoked_at__isnull=True):
            count += grants.grants_revoke(
                project=grant.project,
                user_id=grant.user_id,
                feature_code=grant.feature_code,
                revoked_by=request.user.get_username(),
                reason=reason,
                grant_id=grant.pk,
            )
        self.message_user(request, f"Revoked {count} grant(s).")


@admin.register(Entitlement)
class EntitlementAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "feature_code", "project", "source", "source_id", "valid_from", "valid_to")
    list_filter = ("project", "feature_code", "source")
    search_fields = ("user_id", "feature_code")


@admin.register(SubscriptionRecord)
class SubscriptionRecordAdmin(ReadOnlyAdmin):
    list_display = ("stripe_subscription_id", "project", "user_id", "status", "current_period_end", "updated_at")
    list_filter = ("project", "status", "cancel_at_period_end")
    search_fields = ("user_id", "stripe_subscription_id", "stripe_customer_id")


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "feature_code", "project", "amount", "currency", "amount_refunded", "status", "valid_to")
    list_filter = ("project", "status", "feature_code")
    search_fields = ("user_id", "stripe_checkout_session_id", "stripe_payment_intent_id")


@admin.register(RevenueEntry)
class RevenueEntryAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "project", "kind", "amount", "currency", "stripe_object_id")
    list_filter = ("project", "kind", "currency")
    date_hierarchy = "occurred_at"


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "actor", "action", "target", "project", "reason")
    list_filter = ("action", "project")
    search_fields = ("actor", "target", "reason")
    date_hierarchy = "occurred_at"
