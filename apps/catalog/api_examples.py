"""OpenAPI examples of the product endpoints (apps/catalog/api_products.py), per operation.

The values are the demo's: a configuration as sent, the same as answered (with ids), and a product
as answered. Each list below is one operation's `extend_schema(examples=...)`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample

from apps.common.pagination import ListCursorPagination

CONFIGURATION_EXAMPLE: dict[str, Any] = {
    "option_groups": [
        {
            "name": "Size",
            "selection": "single",
            "required": True,
            "options": [{"name": "Small", "price_delta": 0}, {"name": "Large", "price_delta": 500}],
        }
    ],
    "add_ons": [{"name": "Priority support", "description": "Answers within a day.", "price_delta": 900}],
    "custom_fields": [
        {"key": "domain", "label": "Your domain", "field_type": "text", "required": True, "max_length": 253},
        {"key": "seats", "label": "Seats", "field_type": "number", "min_value": 1, "max_value": 500},
    ],
    "subscription_plans": [
        {"name": "Monthly", "billing_cycle": "monthly", "price_delta": 0},
        {"name": "Annual", "billing_cycle": "annual", "price_multiplier": "10.0"},
    ],
}
CONFIGURATION_OUT: dict[str, Any] = {
    "option_groups": [
        {
            "id": 3,
            "name": "Size",
            "selection": "single",
            "required": True,
            "options": [{"id": 7, "name": "Small", "price_delta": 0}, {"id": 8, "name": "Large", "price_delta": 500}],
        }
    ],
    "add_ons": [{"id": 2, "name": "Priority support", "description": "Answers within a day.", "price_delta": 900}],
    "custom_fields": [
        {
            "id": 4,
            "key": "domain",
            "label": "Your domain",
            "field_type": "text",
            "required": True,
            "max_length": 253,
            "min_value": None,
            "max_value": None,
        },
        {
            "id": 5,
            "key": "seats",
            "label": "Seats",
            "field_type": "number",
            "required": False,
            "max_length": None,
            "min_value": 1,
            "max_value": 500,
        },
    ],
    "subscription_plans": [
        {"id": 1, "name": "Monthly", "billing_cycle": "monthly", "price_multiplier": None, "price_delta": 0},
        {"id": 2, "name": "Annual", "billing_cycle": "annual", "price_multiplier": "10.0000", "price_delta": None},
    ],
}
PRODUCT_OUT: dict[str, Any] = {
    "id": 12,
    "slug": "website-audit",
    "name": "Website audit",
    "description": "A review of your site.",
    "active": True,
    "unit_amount": 4900,
    "currency": "usd",
    "feature_code": "audit",
    "purchase_duration_days": None,
    "stripe_product_id": "prod_Q1w2e3",
    "prices": [
        {
            "price_id": "price_1Abc",
            "product_id": "prod_Q1w2e3",
            "unit_amount": 4900,
            "currency": "usd",
            "recurring": {"interval": "month", "interval_count": 1},
            "active": True,
            "feature_code": "audit",
            "purchase_duration_days": None,
        }
    ],
    "configuration": CONFIGURATION_OUT,
    "created_at": "2025-01-31T09:00:00Z",
    "updated_at": "2025-01-31T09:00:00Z",
}


PRODUCT_LIST = [
    OpenApiExample(
        "A page",
        value={"results": [PRODUCT_OUT], "next_cursor": ListCursorPagination.cursor_after("12")},
        response_only=True,
    )
]
PRODUCT_CREATE = [
    OpenApiExample(
        "A product with options",
        value={
            "slug": "website-audit",
            "name": "Website audit",
            "unit_amount": 4900,
            "currency": "usd",
            "configuration": CONFIGURATION_EXAMPLE,
        },
        request_only=True,
    ),
    OpenApiExample("Created", value=PRODUCT_OUT, response_only=True, status_codes=["201"]),
]
PRODUCT_RETRIEVE = [OpenApiExample("A configured product", value=PRODUCT_OUT)]
PRODUCT_UPDATE = [
    OpenApiExample(
        "Rename, and replace only the add-ons",
        value={"name": "Website audit (2025)", "configuration": {"add_ons": CONFIGURATION_EXAMPLE["add_ons"]}},
        request_only=True,
    ),
    OpenApiExample("Updated", value=PRODUCT_OUT, response_only=True),
]
PRODUCT_OPTIONS_REPLACE = [
    OpenApiExample("A whole configuration", value=CONFIGURATION_EXAMPLE, request_only=True),
    OpenApiExample("Replaced", value=PRODUCT_OUT, response_only=True),
]
PRODUCT_PARAMETER = [OpenApiExample("By slug", value="pro"), OpenApiExample("By id", value="1")]
