"""Product, price, account, webhook endpoint, event, portal session, test clock."""

from __future__ import annotations

from .. import API_VERSION
from .common import JsonObject, list_object, nulls


def product(product_id: str, created: int, name: str) -> JsonObject:
    return {
        "id": product_id,
        "object": "product",
        "active": True,
        "created": created,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }


def price(
    price_id: str, created: int, product_id: str, currency: str, unit_amount: int, recurring: JsonObject | None
) -> JsonObject:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def recurring(interval: str, interval_count: int, trial_period_days: int | None) -> JsonObject:
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": None,
        "trial_period_days": trial_period_days,
        "usage_type": "licensed",
    }


def plan_from_price(price_obj: JsonObject) -> JsonObject:
    """The legacy ``plan`` view of a recurring price, still present on subscription items."""
    rec = price_obj["recurring"] or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": rec.get("interval", "month"),
        "interval_count": rec.get("interval_count", 1),
        "livemode": False,
        "metadata": price_obj["metadata"],
        "meter": None,
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": rec.get("trial_period_days"),
        "usage_type": "licensed",
    }


ACCOUNT_ID = "acct_1SandboxOffline00"


def account(created: int) -> JsonObject:
    requirements: JsonObject = {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }
    return {
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {
            **nulls("mcc name product_description support_email support_phone support_url url"),
            "annual_revenue": None,
            "estimated_worker_count": None,
            "minority_owned_business_designation": None,
            "support_address": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "company": None,
        "controller": {"type": "account"},
        "country": "US",
        "created": created,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "sandbox@example.invalid",
        "external_accounts": list_object(f"/v1/accounts/{ACCOUNT_ID}/external_accounts"),
        "future_requirements": dict(requirements),
        "groups": None,
        "individual": None,
        "metadata": {},
        "payouts_enabled": True,
        "requirements": dict(requirements),
        "settings": {
            "branding": nulls("icon logo primary_color secondary_color"),
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                **nulls(
                    "statement_descriptor_prefix statement_descriptor_prefix_kana statement_descriptor_prefix_kanji"
                ),
            },
            "dashboard": {"display_name": "Stripe sandbox", "timezone": "Etc/UTC"},
            "payments": nulls(
                "statement_descriptor statement_descriptor_kana statement_descriptor_kanji "
                "statement_descriptor_prefix_kana statement_descriptor_prefix_kanji"
            ),
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
        },
        "tos_acceptance": nulls("date ip user_agent"),
        "type": "standard",
    }


def webhook_endpoint(endpoint_id: str, created: int, url: str, enabled_events: list[str]) -> JsonObject:
    return {
        "id": endpoint_id,
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": created,
        "description": None,
        "enabled_events": enabled_events,
        "livemode": False,
        "metadata": {},
        "status": "enabled",
        "url": url,
    }


def event(
    event_id: str,
    created: int,
    event_type: str,
    snapshot: JsonObject,
    previous_attributes: JsonObject | None,
    request_id: str | None,
    idempotency_key: str | None,
    pending_webhooks: int,
) -> JsonObject:
    data: JsonObject = {"object": snapshot}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "context": None,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }


def portal_session(session_id: str, created: int, customer: str, return_url: str | None, url: str) -> JsonObject:
    return {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": "bpc_sandbox_default",
        "created": created,
        "customer": customer,
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": return_url,
        "url": url,
    }


def test_clock(clock_id: str, created: int, frozen_time: int, name: str | None) -> JsonObject:
    return {
        "id": clock_id,
        "object": "test_helpers.test_clock",
        "created": created,
        "deletes_after": created + 30 * 86400,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": name,
        "status": "ready",
        "status_details": {},
    }
