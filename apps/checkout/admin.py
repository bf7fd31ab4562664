from __future__ import annotations

from django.contrib import admin

from apps.checkout.models import BillingCustomer, CheckoutSession, PortalSession


@admin.register(BillingCustomer)
class BillingCustomerAdmin(admin.ModelAdmin[BillingCustomer]):
    list_display = ("user_id", "project", "stripe_customer_id", "created_at")
    list_filter = ("project",)
    search_fields = ("user_id", "stripe_customer_id")
    readonly_fields = ("project", "user_id", "stripe_customer_id", "created_at", "updated_at")


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(admin.ModelAdmin[CheckoutSession]):
    list_display = ("stripe_session_id", "project", "user_id", "mode", "stripe_price_id", "status", "created_at")
    list_filter = ("project", "mode", "status")
    search_fields = ("user_id", "stripe_session_id", "stripe_price_id")
    date_hierarchy = "created_at"
    # Sessions are Stripe's record; the admin reads them, webhooks and sweeps change them.
    readonly_fields = [f.name for f in CheckoutSession._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(PortalSession)
class PortalSessionAdmin(admin.ModelAdmin[PortalSession]):
    list_display = ("stripe_session_id", "project", "customer", "created_at")
    list_filter = ("project",)
    readonly_fields = [f.name for f in PortalSession._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
