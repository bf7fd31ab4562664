"""Customers and the checkout and portal sessions we asked Stripe for: read-only evidence.

They are Stripe's record of who paid for what; webhooks and sweeps change them, nobody deletes them.
"""

from __future__ import annotations

from django.contrib import admin

from apps.checkout.models import BillingCustomer, CheckoutSession, PortalSession
from apps.common.admin_evidence import ReadOnlyAdmin


@admin.register(BillingCustomer)
class BillingCustomerAdmin(ReadOnlyAdmin[BillingCustomer]):
    # Created by the checkout service, which keys the Stripe customer create on this row's id: a
    # hand-made row would have no Stripe customer behind it.
    list_display = ("user_id", "project", "stripe_customer_id", "created_at")
    list_filter = ("project",)
    search_fields = ("user_id", "stripe_customer_id")
    list_select_related = ("project",)
    readonly_fields = ("project", "user_id", "stripe_customer_id", "created_at", "updated_at")


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdmin[CheckoutSession]):
    list_display = (
        "stripe_session_id",
        "project",
        "user_id",
        "mode",
        "stripe_price_id",
        "status",
        "payment_failed_at",
        "created_at",
    )
    # "Payment failed at: not empty" lists the sessions whose last payment attempt was declined.
    list_filter = ("project", "mode", "status", ("payment_failed_at", admin.EmptyFieldListFilter))
    search_fields = ("user_id", "stripe_session_id", "stripe_price_id", "stripe_payment_intent_id")
    list_select_related = ("project",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in CheckoutSession._meta.fields]


@admin.register(PortalSession)
class PortalSessionAdmin(ReadOnlyAdmin[PortalSession]):
    list_display = ("stripe_session_id", "project", "customer", "created_at")
    list_filter = ("project",)
    list_select_related = ("project", "customer__project")
    readonly_fields = [f.name for f in PortalSession._meta.fields]
