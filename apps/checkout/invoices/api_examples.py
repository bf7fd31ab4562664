"""OpenAPI examples of the invoice endpoints (apps/checkout/invoices/api.py).

One invoice, checked by hand: product 12 ("Website audit", 4900) with option 8 ("Large", +500, a
single-choice group) and option 11 ("Accessibility review", +1250, a multiple-choice group), add-on
2 ("Priority support", +900): 7550 before the plan; plan 3 multiplies by 0.95: 7172.5, rounded half
to even: 7172; two of them: 14344.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample

from apps.common.pagination import ListCursorPagination

CREATE_BODY: dict[str, Any] = {
    "user_id": "user_42",
    "project_id": 1,
    "currency": "usd",
    "lines": [
        {
            "product_id": 12,
            "option_ids": [8, 11],
            "add_on_ids": [2],
            "plan_id": 3,
            "quantity": 2,
            "custom_fields": {"domain": "shop.example.com", "seats": 5},
        }
    ],
    "due_at": "2026-12-31T00:00:00Z",
}

_OPTIONS = [
    {"id": 8, "name": "Large", "group_id": 3, "group": "Size", "delta": 500},
    {"id": 11, "name": "Accessibility review", "group_id": 4, "group": "Extras", "delta": 1250},
]
_ADD_ONS = [{"id": 2, "name": "Priority support", "delta": 900}]
_PLAN = {"id": 3, "name": "Prepaid, 5% off", "billing_cycle": "one_time", "multiplier": "0.95", "delta": None}

LINE: dict[str, Any] = {
    "id": 57,
    "position": 0,
    "product_id": 12,
    "product_name": "Website audit",
    "quantity": 2,
    "base_amount": 4900,
    "unit_amount": 7172,
    "line_total": 14344,
    "options": _OPTIONS,
    "add_ons": _ADD_ONS,
    "plan": _PLAN,
    "custom_fields": {"domain": "shop.example.com", "seats": 5},
    "breakdown": {
        "currency": "usd",
        "base": 4900,
        "options": _OPTIONS,
        "add_ons": _ADD_ONS,
        "before_plan": 7550,
        "plan": {**_PLAN, "exact": "7172.5", "rounding": "half_even"},
        "unit_amount": 7172,
        "quantity": 2,
        "line_total": 14344,
    },
    "feature_code": "labs",
    "purchase_duration_days": 365,
}

INVOICE: dict[str, Any] = {
    "id": 31,
    "url": "/api/v1/billing/invoices/31",
    "project_id": 1,
    "user_id": "user_42",
    "currency": "usd",
    "status": "draft",
    "subtotal": 14344,
    "total": 14344,
    "due_at": "2026-12-31T00:00:00Z",
    "paid_at": None,
    "voided_at": None,
    "marked_uncollectible_at": None,
    "created_at": "2026-11-23T10:00:00Z",
    "updated_at": "2026-11-23T10:00:00Z",
    "lines": [LINE],
    "sessions_url": "/api/v1/billing/sessions?invoice_id=31",
}

INVOICE_CREATE = [
    OpenApiExample("Configured product, quantity 2", value=CREATE_BODY, request_only=True),
    OpenApiExample("Created (a draft)", value=INVOICE, response_only=True, status_codes=["201"]),
]
INVOICE_LIST = [
    OpenApiExample(
        "A page",
        value={"results": [INVOICE], "next_cursor": ListCursorPagination.cursor_after("31")},
        response_only=True,
    )
]
INVOICE_RETRIEVE = [
    OpenApiExample("A draft", value=INVOICE, response_only=True),
    OpenApiExample(
        "Paid",
        value={**INVOICE, "status": "paid", "paid_at": "2026-11-23T10:05:00Z", "updated_at": "2026-11-23T10:05:01Z"},
        response_only=True,
    ),
]
INVOICE_VOID = [
    OpenApiExample(
        "Voided",
        value={**INVOICE, "status": "void", "voided_at": "2026-11-24T09:00:00Z", "updated_at": "2026-11-24T09:00:00Z"},
        response_only=True,
    )
]
INVOICE_MARK_UNCOLLECTIBLE = [
    OpenApiExample(
        "Marked uncollectible",
        value={
            **INVOICE,
            "status": "uncollectible",
            "marked_uncollectible_at": "2026-12-31T09:00:00Z",
            "updated_at": "2026-12-31T09:00:00Z",
        },
        response_only=True,
    )
]
