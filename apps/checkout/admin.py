"""Customers, invoices, and the checkout and portal sessions we asked Stripe for.

They are Stripe's record of who paid for what, and finance's record of who was billed what: webhooks,
sweeps and the services change them, nobody edits or deletes them by hand. Finance's actions go
through the same services as the API, so that a refused move is refused here too, and each is
audited with the admin user as the actor:

- invoices: void, mark uncollectible (conditional status moves; a refused one is named in a message);
- sessions: regenerate (a new Stripe session for the same invoice, under the session's optimistic lock).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, reverse
from django.urls import path as url_path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.checkout.invoices.services import invoice_mark_uncollectible, invoice_void
from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice, InvoiceLine, PortalSession
from apps.common.admin_actions import reason_action
from apps.common.admin_columns import money, short_id, when
from apps.common.admin_evidence import ReadOnlyAdmin
from apps.common.customer_page import views as customer_views
from apps.common.exceptions import ServiceError

# How many refusals one message names; the rest are counted.
NAMED_REFUSALS = 10


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def _report(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, *, done: list[str], refused: list[str], verb: str
) -> None:
    if done:
        modeladmin.message_user(request, f"{verb} {len(done)}: {', '.join(done)}.", messages.SUCCESS)
    if refused:
        named = "; ".join(refused[:NAMED_REFUSALS])
        more = f" (and {len(refused) - NAMED_REFUSALS} more)" if len(refused) > NAMED_REFUSALS else ""
        modeladmin.message_user(request, f"Refused {len(refused)}: {named}{more}", messages.ERROR)


# --- the arithmetic of a line, for people ----------------------------------------------------------


def breakdown_rows(breakdown: dict[str, Any]) -> list[tuple[str, str]]:
    """A line's stored breakdown as (step, amount) rows, in the order the price was computed."""
    if not breakdown:
        return []
    rows: list[tuple[str, str]] = [("base (the product's unit amount)", str(breakdown.get("base")))]
    for option in breakdown.get("options", []):
        rows.append((f"+ option {option.get('group')}: {option.get('name')} (#{option.get('id')})", _signed(option)))
    for add_on in breakdown.get("add_ons", []):
        rows.append((f"+ add-on {add_on.get('name')} (#{add_on.get('id')})", _signed(add_on)))
    rows.append(("= before plan", str(breakdown.get("before_plan"))))
    plan = breakdown.get("plan")
    if plan and plan.get("multiplier") is not None:
        rows.append(
            (
                f"x plan {plan.get('name')} (#{plan.get('id')}): x {plan.get('multiplier')} = {plan.get('exact')}, "
                f"rounded once ({plan.get('rounding', 'half_even').replace('_', ' ')})",
                str(breakdown.get("unit_amount")),
            )
        )
    elif plan:
        rows.append((f"+ plan {plan.get('name')} (#{plan.get('id')})", _signed(plan)))
    rows.append(("= unit amount", str(breakdown.get("unit_amount"))))
    rows.append((f"x quantity {breakdown.get('quantity')}", ""))
    rows.append((f"= line total ({breakdown.get('currency', '')}, minor units)", str(breakdown.get("line_total"))))
    return rows


def _signed(item: dict[str, Any]) -> str:
    delta = int(item.get("delta") or 0)
    return f"{delta:+d}"


def breakdown_html(breakdown: dict[str, Any]) -> SafeString:
    rows = breakdown_rows(breakdown)
    if not rows:
        return format_html("{}", "-")
    body = format_html_join(
        "", '<tr><td>{}</td><td style="text-align: right; font-family: monospace">{}</td></tr>', rows
    )
    return format_html('<table class="invoice-breakdown">{}</table>', body)


# --- invoices ---------------------------------------------------------------------------------------


class InvoiceLineInline(admin.TabularInline):  # type: ignore[type-arg]
    # What was billed, as priced when the invoice was created: never edited afterwards.
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = (
        "position",
        "product",
        "product_name",
        "quantity",
        "unit_amount",
        "line_total",
        "feature_code",
        "purchase_duration_days",
        "custom_fields",
        "breakdown_table",
    )
    readonly_fields = fields
    ordering = ("position",)

    @admin.display(description="breakdown")
    def breakdown_table(self, line: InvoiceLine) -> SafeString:
        return breakdown_html(line.breakdown)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin[Invoice]):
    list_display = ("id", "project", "user_id", "status", "total_money", "due", "paid", "created")
    list_filter = ("project", "status", "currency")
    # An id (digits) finds that invoice too; see get_search_results.
    search_fields = ("user_id", "stripe_payment_intent_id")
    list_select_related = ("project",)
    date_hierarchy = "created_at"
    due = when("due_at", "due")
    paid = when("paid_at", "paid")
    created = when("created_at", "created")
    inlines = [InvoiceLineInline]
    actions = ["void_selected", "mark_uncollectible_selected"]
    fields = (
        "project",
        "user_id",
        "customer",
        "status",
        "currency",
        "subtotal",
        "total",
        "due_at",
        "created_by",
        "created_at",
        "updated_at",
        "paid_at",
        "stripe_payment_intent_id",
        "voided_at",
        "marked_uncollectible_at",
        "sessions_link",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Invoice], search_term: str
    ) -> tuple[QuerySet[Invoice], bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lstrip("#")
        if term.isascii() and term.isdigit() and len(term) < 19:  # a bigint id, not a 500
            found = found | queryset.filter(pk=int(term))
        return found, may_have_duplicates

    @admin.display(description="total", ordering="total")
    def total_money(self, invoice: Invoice) -> str:
        return money(invoice.total, invoice.currency)

    @admin.display(description="hosted sessions")
    def sessions_link(self, invoice: Invoice) -> SafeString:
        url = reverse("admin:checkout_checkoutsession_changelist") + f"?invoice__id__exact={invoice.pk}"
        return format_html('<a href="{}">{} session(s)</a>', url, invoice.sessions.count())

    def has_transition_permission(self, request: HttpRequest) -> bool:
        # The rows are read-only, but voiding changes what a customer owes: it needs the change
        # permission on invoices (superusers have it), not just the right to look.
        return bool(request.user.has_perm("checkout.change_invoice"))

    def _move(
        self,
        request: HttpRequest,
        queryset: QuerySet[Invoice],
        reason: str,
        service: Callable[..., Invoice],
        verb: str,
    ) -> None:
        done: list[str] = []
        refused: list[str] = []
        for invoice in queryset.order_by("pk"):
            try:
                service(invoice=invoice, actor=_actor(request), reason=reason)
            except ServiceError as exc:  # Conflict: the status does not allow it (nothing changed)
                refused.append(str(exc))
            else:
                done.append(f"#{invoice.pk}")
        _report(self, request, done=done, refused=refused, verb=verb)

    @reason_action(description="Void selected invoices", permissions=["transition"])
    def void_selected(self, request: HttpRequest, queryset: QuerySet[Invoice], reason: str) -> None:
        self._move(request, queryset, reason, invoice_void, "Voided")

    @reason_action(description="Mark selected invoices uncollectible", permissions=["transition"])
    def mark_uncollectible_selected(self, request: HttpRequest, queryset: QuerySet[Invoice], reason: str) -> None:
        self._move(request, queryset, reason, invoice_mark_uncollectible, "Marked uncollectible")


# --- customers and sessions ---------------------------------------------------------------------------


@admin.register(BillingCustomer)
class BillingCustomerAdmin(ReadOnlyAdmin[BillingCustomer]):
    # Created by the checkout service, which keys the Stripe customer create on this row's id: a
    # hand-made row would have no Stripe customer behind it.
    list_display = ("user_id", "project", "stripe_customer_id", "created_at", "customer_page")
    list_filter = ("project",)
    search_fields = ("user_id", "stripe_customer_id")
    list_select_related = ("project",)
    readonly_fields = ("project", "user_id", "stripe_customer_id", "created_at", "updated_at")

    @admin.display(description="customer page")
    def customer_page(self, obj: BillingCustomer) -> str:
        return format_html('<a href="{}">open</a>', customer_views.page_url(obj.project, obj.user_id))

    def get_urls(self) -> list[URLPattern]:
        # The customer page (apps/common/customer_page) lives under this admin's path, so that it
        # follows the admin's URL wherever that is mounted. Before the model's own URLs, whose
        # "<object_id>/" would otherwise catch "customer/".
        wrap = self.admin_site.admin_view
        urls = [
            url_path("customer/", wrap(self.customer_page_view), name="customer_page"),
            url_path("customer/grant/", wrap(customer_views.customer_grant_view), name="customer_grant"),
            url_path("customer/revoke/", wrap(customer_views.customer_revoke_view), name="customer_revoke"),
            url_path("customer/replay/", wrap(customer_views.customer_replay_view), name="customer_replay"),
        ]
        return [*urls, *super().get_urls()]

    def customer_page_view(self, request: HttpRequest) -> HttpResponse:
        return customer_views.customer_page_view(request, self.admin_site)


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdmin[CheckoutSession]):
    # The mode is a filter, the creation time the date bar above the list (a column of it left the
    # list 2 px too wide at 1400 px once ids grew); the recovery attempts and the last update are on
    # the session's page.
    list_display = ("id", "session", "project", "user_id", "invoice_ref", "status", "expires", "payment_failed")
    # "Payment failed at: not empty" lists the sessions whose last payment attempt was declined;
    # "Invoice: not empty" the hosted sessions of invoices.
    list_filter = (
        "project",
        "status",
        "mode",
        ("invoice", admin.EmptyFieldListFilter),
        ("payment_failed_at", admin.EmptyFieldListFilter),
    )
    search_fields = (
        "user_id",
        "stripe_session_id",
        "stripe_price_id",
        "stripe_payment_intent_id",
        "customer_email",
    )
    list_select_related = ("project", "invoice")
    date_hierarchy = "created_at"
    session = short_id("stripe_session_id", "Stripe session")
    expires = when("expires_at", "expires")
    payment_failed = when("payment_failed_at", "payment failed")
    readonly_fields = [f.name for f in CheckoutSession._meta.fields]
    actions = ["regenerate_selected"]

    @admin.display(description="invoice", ordering="invoice")
    def invoice_ref(self, session: CheckoutSession) -> SafeString | str:
        if session.invoice_id is None:
            return "-"
        url = reverse("admin:checkout_invoice_change", args=[session.invoice_id])
        return format_html('<a href="{}">#{}</a>', url, session.invoice_id)

    def has_regenerate_permission(self, request: HttpRequest) -> bool:
        # A regenerate creates a Stripe session and retires one: the change permission on sessions.
        return bool(request.user.has_perm("checkout.change_checkoutsession"))

    @admin.action(
        description="Regenerate selected sessions (a new Stripe session for the same invoice)",
        permissions=["regenerate"],
    )
    def regenerate_selected(self, request: HttpRequest, queryset: QuerySet[CheckoutSession]) -> None:
        # Imported when the action runs, so that the pages of every other model still load should the
        # hosted-session module (Stripe gateway, entitlements) fail to import.
        from apps.checkout.hosted.services import hosted_session_regenerate

        done: list[str] = []
        refused: list[str] = []
        for session in queryset.order_by("pk"):
            # The optimistic lock's token is the row as this action loaded it: a session changed since
            # (by a webhook, a sweep, another operator) is refused rather than replaced blindly.
            try:
                new = hosted_session_regenerate(
                    session_id=session.pk, expected_updated_at=session.updated_at, actor=_actor(request)
                )
            except (ServiceError, ValidationError) as exc:
                refused.append(f"#{session.pk}: {exc}")
            else:
                done.append(f"#{session.pk} → #{new.pk}")
        _report(self, request, done=done, refused=refused, verb="Regenerated")


@admin.register(PortalSession)
class PortalSessionAdmin(ReadOnlyAdmin[PortalSession]):
    list_display = ("stripe_session_id", "project", "customer", "created_at")
    list_filter = ("project",)
    list_select_related = ("project", "customer__project")
    readonly_fields = [f.name for f in PortalSession._meta.fields]
