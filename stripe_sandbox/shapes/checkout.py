"""Checkout session and its line items (``item`` objects)."""

from __future__ import annotations

from .common import JsonObject, nulls


def checkout_session(session_id: str, created: int, mode: str, expires_at: int, url: str) -> JsonObject:
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": 0,
        "amount_total": 0,
        # A session's automatic_tax has no disabled_reason (subscriptions' and invoices' do).
        "automatic_tax": {"enabled": False, "liability": None, "status": None, "provider": None},
        "billing_address_collection": None,
        "branding_settings": None,
        "cancel_url": None,
        "client_reference_id": None,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": None,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": nulls("after_submit shipping_address submit terms_of_service_acceptance"),
        "customer": None,
        "customer_account": None,
        "customer_creation": None,
        "customer_details": None,
        "customer_email": None,
        "discounts": [],
        "excluded_payment_method_types": None,
        "expires_at": expires_at,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "managed_payments": None,
        "metadata": {},
        "mode": mode,
        "name_collection": None,
        "optional_items": None,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "presentment_details": None,
        "recovered_from": None,
        "redirect_on_completion": None,
        "return_url": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": None,
        "tax_id_collection": {"enabled": False, "required": "never"},
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",  # this API version's name (``hosted`` before)
        "url": url,
        "wallet_options": None,
    }


def after_expiration(enabled: bool, allow_promotion_codes: bool) -> JsonObject:
    """``after_expiration`` as created: the recovery URL and its expiry appear when the session expires."""
    return {
        "recovery": {
            "allow_promotion_codes": allow_promotion_codes,
            "enabled": enabled,
            "expires_at": None,
            "url": None,
        }
    }


def checkout_item(item_id: str, price_obj: JsonObject, quantity: int, description: str) -> JsonObject:
    amount = price_obj["unit_amount"] * quantity
    return {
        "id": item_id,
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price_obj["currency"],
        "description": description,
        "discounts": [],
        "metadata": {},
        "price": price_obj,
        "quantity": quantity,
        "taxes": [],
    }


def customer_details(email: str | None, name: str | None) -> JsonObject:
    return {
        "address": None,
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
