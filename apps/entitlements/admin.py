"""Support staff's admin: grants (with a reason, audited), and read-only views of everything else."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from apps.common.admin_actions import reason_action
from apps.common.admin_columns import breakable_column, money, short_id, when
from apps.common.admin_evidence import EvidenceAdmin, ReadOnlyAdmin
from apps.common.admin_export import CsvExportMixin
from apps.entitlements import grants
from apps.entitlements.models import Entitlement, Grant, Purchase, RevenueEntry, SubscriptionRecord
from apps.entitlements.notifications import admin as notifications_admin  # noqa: F401 - registers its admins


class GrantForm(forms.ModelForm):  # type: ignore[type-arg]
    """The add form. It checks what grants.grant_create checks, so that a refusal is a form error
    rather than an exception in save_model (which the admin would answer with a 500)."""

    class Meta:
        model = Grant
        fields = ("project", "user_id", "feature_code", "reason", "valid_from", "valid_to")
        help_texts = {
            "valid_from": "Leave blank to start now (as the API does).",
            "valid_to": "Leave blank for no end.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Optional here although the column is not null: blank means "now", filled in by
        # grant_create at the moment it writes, as for POST /api/v1/admin/grant.
        if "valid_from" in self.fields:  # the change page shows a stored grant read-only
            self.fields["valid_from"].required = False

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        project, code = data.get("project"), data.get("feature_code")
        if project is not None and code and code not in grants.known_feature_codes(project):
            self.add_error("feature_code", f"Unknown feature code {code!r} for {project}.")
        now = timezone.now()
        start, end = data.get("valid_from") or now, data.get("valid_to")
        if end is not None and end <= now:
            self.add_error("valid_to", "Has already passed: a grant must end in the future.")
        elif end is not None and end <= start:
            self.add_error("valid_to", "Must be after valid from.")
        return data


@admin.register(Grant)
class GrantAdmin(CsvExportMixin, EvidenceAdmin[Grant]):
    """Grants are revoked (with a reason), never deleted, so that the history and the audit log stay."""

    export_fields = (
        "id",
        "project__slug",
        "user_id",
        "feature_code",
        "granted_by",
        "reason",
        "valid_from",
        "valid_to",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
        "created_at",
    )

    form = GrantForm
    actions = ["revoke"]
    list_display = ("user_id", "feature_code", "project", "starts", "ends", "revoked", "granted")
    list_filter = ("project", "feature_code", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("user_id", "feature_code", "reason", "granted_by")
    list_select_related = ("project",)
    date_hierarchy = "created_at"
    starts = when("valid_from", "from")
    ends = when("valid_to", "until")
    revoked = when("revoked_at", "revoked")
    granted = breakable_column("granted_by", "granted by")

    def get_readonly_fields(self, request: HttpRequest, obj: Grant | None = None) -> Any:
        if obj is None:
            return ()
        return [f.name for f in Grant._meta.fields]

    def save_model(self, request: HttpRequest, obj: Grant, form: Any, change: bool) -> None:
        if change:
            return  # every field of a stored grant is read-only; a revoke is the only change
        # Through the API's service, so that the audit entry and the recompute happen here too.
        # GrantForm.clean checked the same rules, so a refusal here is not expected to reach users.
        created = grants.grant_create(
            project=obj.project,
            user_id=obj.user_id,
            feature_code=obj.feature_code,
            granted_by=request.user.get_username(),
            reason=obj.reason,
            valid_from=obj.valid_from,
            valid_to=obj.valid_to,
        )
        # The admin's own log entry and redirect read the saved row's values.
        obj.pk = created.pk
        obj.valid_from = created.valid_from
        obj.granted_by = created.granted_by
        obj.created_at = created.created_at

    # Without `permissions`, an action is open to anyone who may view the list.
    @reason_action(description="Revoke selected grants", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Grant], reason: str) -> None:
        count = 0
        for grant in queryset.filter(revoked_at__isnull=True).select_related("project"):
            count += grants.grants_revoke(
                project=grant.project,
                user_id=grant.user_id,
                feature_code=grant.feature_code,
                revoked_by=request.user.get_username(),
                reason=reason,
                grant_id=grant.pk,
            )
        self.message_user(request, f"Revoked {count} grant(s).", messages.SUCCESS)


@admin.register(Entitlement)
class EntitlementAdmin(ReadOnlyAdmin[Entitlement]):
    # A projection of the sources below, recomputed on every change to them: never edited by hand.
    list_display = ("user_id", "feature_code", "project", "active_now", "source_ref", "starts", "ends")
    list_filter = ("project", "feature_code", "source")
    search_fields = ("user_id", "feature_code")
    list_select_related = ("project",)
    starts = when("valid_from", "from")
    ends = when("valid_to", "until")

    @admin.display(description="source", ordering="source")
    def source_ref(self, obj: Entitlement) -> str:
        # The source row, as the customer page names it: "grant #12", "subscription #3".
        return f"{obj.source} #{obj.source_id}"

    @admin.display(description="active now", boolean=True)
    def active_now(self, obj: Entitlement) -> bool:
        # A row is a validity window: rows that start later or have ended stay in the table.
        now = timezone.now()
        return obj.valid_from <= now and (obj.valid_to is None or obj.valid_to > now)


@admin.register(SubscriptionRecord)
class SubscriptionRecordAdmin(ReadOnlyAdmin[SubscriptionRecord]):
    list_display = ("user_id", "project", "status", "subscription", "period_end", "cancel_at_period_end", "updated")
    list_filter = ("project", "status", "cancel_at_period_end")
    search_fields = ("user_id", "stripe_subscription_id", "stripe_customer_id")
    list_select_related = ("project",)
    subscription = short_id("stripe_subscription_id", "Stripe subscription")
    period_end = when("current_period_end", "period ends")
    updated = when("updated_at", "updated")


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin[Purchase]):
    list_display = ("user_id", "feature_code", "project", "paid", "refunded", "status", "bought", "ends")
    list_filter = ("project", "status", "feature_code")
    search_fields = ("user_id", "stripe_checkout_session_id", "stripe_payment_intent_id")
    list_select_related = ("project",)
    bought = when("valid_from", "paid at")
    ends = when("valid_to", "until")

    @admin.display(description="amount", ordering="amount")
    def paid(self, obj: Purchase) -> str:
        return money(obj.amount, obj.currency)

    @admin.display(description="refunded", ordering="amount_refunded")
    def refunded(self, obj: Purchase) -> str:
        return money(obj.amount_refunded, obj.currency)


class UserFilter(admin.SimpleListFilter):
    """`?user_id=<id>`: one customer's rows (the user cells link here). A user id is typed or clicked,
    never picked from a list of every user; the sidebar shows the one in force, with "All" to clear it."""

    title = "user"
    parameter_name = "user_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = request.GET.get(self.parameter_name, "")
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(user_id=value) if value else queryset


@admin.register(RevenueEntry)
class RevenueEntryAdmin(CsvExportMixin, ReadOnlyAdmin[RevenueEntry]):
    list_display = ("occurred", "project", "kind", "user", "amount_with_currency", "stripe_object")
    list_filter = ("project", "kind", "currency", UserFilter)
    search_fields = ("=user_id", "stripe_object_id", "stripe_charge_id", "stripe_payment_intent_id")
    list_select_related = ("project",)
    date_hierarchy = "occurred_at"
    occurred = when("occurred_at", "occurred")
    stripe_object = short_id("stripe_object_id", "Stripe object")
    # Money as stored: integer minor units, with the currency in its own column.
    export_fields = (
        "id",
        "occurred_at",
        "project__slug",
        "user_id",
        "kind",
        "amount",
        "currency",
        "stripe_object_id",
        "stripe_charge_id",
        "stripe_payment_intent_id",
    )

    @admin.display(description="user", ordering="user_id")
    def user(self, obj: RevenueEntry) -> str:
        if not obj.user_id:
            return "-"
        # A link to this customer's rows: user ids are per project, so the project goes with it.
        query = urlencode({"project__id__exact": str(obj.project_id), "user_id": obj.user_id})
        return format_html('<a href="?{}">{}</a>', query, obj.user_id)

    @admin.display(description="amount", ordering="amount")
    def amount_with_currency(self, obj: RevenueEntry) -> str:
        # Minor units as stored, so that the figure matches the export and Stripe's API.
        return money(obj.amount, obj.currency)
