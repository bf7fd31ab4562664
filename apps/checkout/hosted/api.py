"""Hosted sessions of invoices: create one for an invoice, list and read them, regenerate one.

One view per operation. Everything is scoped to the key's project: another project's invoice or
session is a 404. `updated_at` is the optimistic-lock token of a regenerate, so it is written with
its full precision (microseconds) in the API's instant format, and the same text parses back to the
same instant.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.checkout.hosted import selectors, services
from apps.checkout.models import CheckoutSession
from apps.common.api import client_of, validated_input
from apps.common.idempotency import idempotent
from apps.common.pagination import BAD_PAGE_QUERY, ListCursorPagination
from apps.common.query import InstantField, validated_query
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER
from apps.projects.permissions import CLIENT_PERMISSIONS

BILLING_READ = ("billing:read",)
BILLING_WRITE = ("billing:write",)
_BIGINT_MAX = 2**63 - 1

_SESSION_EXAMPLE = {
    "id": 41,
    "api_url": "/api/v1/billing/sessions/41",
    "stripe_session_id": "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
    "invoice_id": 17,
    "status": "open",
    "url": "https://checkout.stripe.com/c/pay/cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
    "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
    "expires_at": "2026-11-24T10:00:00Z",
    "customer_email": "",
    "completed_at": None,
    "expired_at": None,
    "abandoned_at": None,
    "recovery_url": "",
    "recovery_url_expires_at": None,
    "recovery_attempts": 0,
    "last_recovery_at": None,
    "regenerated_from": None,
    "regenerated_by": None,
    "created_at": "2026-11-23T10:00:00.104518Z",
    "updated_at": "2026-11-23T10:00:00.731902Z",
}
_REGENERATED_EXAMPLE = {
    **_SESSION_EXAMPLE,
    "id": 42,
    "api_url": "/api/v1/billing/sessions/42",
    "stripe_session_id": "cs_test_b2ZT2VSmozRDO6gVVevPSpR8Qx52QKrEXlJWRDrQKrlgJi3e7uWZ9YC2PMZ",
    "url": "https://checkout.stripe.com/c/pay/cs_test_b2ZT2VSmozRDO6gVVevPSpR8Qx52QKrEXlJWRDrQKrlgJi3e7uWZ9YC2PMZ",
    "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_b2ZT2VSmozRDO6gVVevPSpR8Qx52QKrEXlJWRDrQKrlgJi3e7uWZ9YC2PMZ",
    "expires_at": "2026-11-25T09:30:00Z",
    "regenerated_from": 41,
    "created_at": "2026-11-24T09:30:00.018221Z",
    "updated_at": "2026-11-24T09:30:00.640377Z",
}
_EXPIRED_EXAMPLE = {
    **_SESSION_EXAMPLE,
    "status": "expired",
    "url": "",
    "checkout_url": "",
    "expired_at": "2026-11-24T10:00:03Z",
    "recovery_url": "https://buy.stripe.com/r/live_YWNjdF8xUGdhZm1CN1daMDF6Z2tX",
    "recovery_url_expires_at": "2026-12-24T10:00:03Z",
    "updated_at": "2026-11-24T10:00:04.288170Z",
}

_STATUS_HELP = (
    "`open` (payable at `checkout_url`), `completed` (paid, or being paid by an asynchronous method), `expired` "
    "(past `expires_at`), `abandoned` (expired unpaid for longer than HOSTED_SESSION_ABANDON_AFTER_SECONDS), "
    "`regenerated` (replaced by the session named in `regenerated_by`); `creating` while Stripe has not answered "
    "yet and `failed` when Stripe refused or was unavailable."
)


def session_url(session: CheckoutSession) -> str:
    return reverse("billing-session-detail", kwargs={"session_id": session.pk})


class HostedSessionOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    api_url = serializers.SerializerMethodField(help_text="This session in the API (GET).")
    stripe_session_id = serializers.CharField(allow_null=True, help_text="Stripe's id; null until Stripe answered.")
    invoice_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=CheckoutSession.Status.choices, help_text=_STATUS_HELP)
    url = serializers.CharField(help_text="Stripe's hosted payment page: redirect the customer here while `open`.")
    checkout_url = serializers.CharField(
        source="url", help_text="The same as `url` (the name POST /api/v1/checkout/session answers)."
    )
    expires_at = InstantField(allow_null=True, help_text="When Stripe expires the session unless it is paid.")
    customer_email = serializers.CharField(help_text="The address the customer gave on the page (once completed).")
    completed_at = InstantField(allow_null=True)
    expired_at = InstantField(allow_null=True)
    abandoned_at = InstantField(allow_null=True)
    recovery_url = serializers.CharField(
        help_text="Stripe's recovery link of an expired session (after_expiration.recovery): it opens a new session "
        "for the same invoice. Empty when Stripe gave none."
    )
    recovery_url_expires_at = InstantField(allow_null=True)
    recovery_attempts = serializers.IntegerField(help_text="How many times recovery reached out for this session.")
    last_recovery_at = InstantField(allow_null=True)
    regenerated_from = serializers.IntegerField(
        source="regenerated_from_id", allow_null=True, help_text="The session this one replaced."
    )
    regenerated_by = serializers.SerializerMethodField(help_text="The session that replaced this one.")
    created_at = InstantField()
    updated_at = InstantField(
        help_text="Moves on every change. Send it back as read, to the microsecond, to regenerate the session."
    )

    def get_api_url(self, session: CheckoutSession) -> str:
        return session_url(session)

    def get_regenerated_by(self, session: CheckoutSession) -> int | None:
        replacement = getattr(session, "regenerated_by", None)
        return replacement.pk if replacement is not None else None


def _actor(request: Request) -> str:
    client = client_of(request)
    return f"app:{client.app_name} (key {client.key_prefix})"


def _created(session: CheckoutSession) -> Response:
    fresh = selectors.hosted_session_get(project_id=session.project_id, session_id=session.pk)
    return Response(
        HostedSessionOutputSerializer(fresh).data,
        status=status.HTTP_201_CREATED,
        headers={"Location": session_url(session)},
    )


_INVOICE_ID = OpenApiParameter("invoice_id", int, OpenApiParameter.PATH, description="The invoice's `id`.")
_SESSION_ID = OpenApiParameter("session_id", int, OpenApiParameter.PATH, description="The session's `id`.")
_STRIPE_FAILED = OpenApiResponse(
    description="Stripe failed or could not be reached: `{detail, stripe_request_id}`. The session row is `failed`."
)


class HostedSessionCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_WRITE
    calls_stripe = True

    class InputSerializer(serializers.Serializer[Any]):
        success_url = serializers.URLField(max_length=2000, help_text="Within the project's redirect allowlist.")
        cancel_url = serializers.URLField(max_length=2000, help_text="Within the project's redirect allowlist.")

    @extend_schema(
        operation_id="invoice_checkout_create",
        summary="Open a hosted Stripe Checkout page paying an invoice",
        description=(
            "Creates a Stripe Checkout session in payment mode for the whole invoice: one `price_data` line per "
            "invoice line (its unit amount and quantity), the invoice's customer, metadata naming the project and the "
            "invoice, "
            "`expires_at` (HOSTED_SESSION_EXPIRES_AFTER_SECONDS from now; Stripe allows 30 minutes to 24 hours) and "
            "Stripe's abandoned-cart recovery. A `draft` invoice becomes `open` (its amount is now at Stripe); an "
            "invoice that is `paid`, `void` or `uncollectible` is a 409 and nothing is created. Redirect the customer "
            "to `checkout_url`. `checkout.session.completed` then marks the session completed and the invoice paid. "
            "Several sessions of one open invoice may exist; the first paid pays it."
        ),
        parameters=[_INVOICE_ID],
        request=InputSerializer,
        responses={
            201: OpenApiResponse(response=HostedSessionOutputSerializer, description="Created; `Location` is its URL."),
            400: OpenApiResponse(
                description="A URL that is invalid or outside the project's allowlist (named by its field), "
                "or Stripe refused the request."
            ),
            403: OpenApiResponse(description="The key lacks `billing:write`."),
            404: OpenApiResponse(description="No such invoice in your project."),
            409: OpenApiResponse(
                description="The invoice is not `draft` or `open` (the detail names its status), or totals 0; or the "
                "Idempotency-Key was used with another body, or its first request is running."
            ),
            502: _STRIPE_FAILED,
        },
        examples=[
            OpenApiExample(
                "Pay invoice 17",
                request_only=True,
                value={"success_url": "https://app.local/paid", "cancel_url": "https://app.local/invoices/17"},
            ),
            OpenApiExample("Created", response_only=True, status_codes=["201"], value=_SESSION_EXAMPLE),
            OpenApiExample(
                "The invoice is void",
                response_only=True,
                status_codes=["409"],
                value={"detail": "Invoice #17 is void: cannot create a hosted session."},
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, invoice_id: int) -> Response:
        # The body first (as every POST here): a malformed body is a 400 whatever the id names.
        values = validated_input(request, self.InputSerializer)
        if not selectors.invoice_in_project(project_id=client_of(request).project_id, invoice_id=invoice_id):
            raise Http404
        session = services.hosted_session_create(invoice_id=invoice_id, actor=_actor(request), **values)
        return _created(session)


class HostedSessionListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_READ

    class QuerySerializer(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=CheckoutSession.Status.choices, required=False, help_text="Only sessions in this status."
        )
        invoice_id = serializers.IntegerField(
            min_value=1, max_value=_BIGINT_MAX, required=False, help_text="Only the sessions of this invoice."
        )

    class OutputSerializer(serializers.Serializer[Any]):
        results = HostedSessionOutputSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="billing_session_list",
        summary="Your project's hosted sessions of invoices, newest first",
        description="Sessions of invoices only (a price checkout of `POST /checkout/session` is not one). Paginated.",
        parameters=[QuerySerializer, LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description=f"A bad `status` or `invoice_id`; or {BAD_PAGE_QUERY}"),
            403: OpenApiResponse(description="The key lacks `billing:read`."),
        },
        examples=[
            OpenApiExample(
                "An invoice's sessions: one replaced, its replacement open",
                value={
                    "results": [
                        _REGENERATED_EXAMPLE,
                        {**_SESSION_EXAMPLE, "status": "regenerated", "regenerated_by": 42},
                    ],
                    "next_cursor": None,
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, self.QuerySerializer)
        sessions = selectors.hosted_session_queryset(
            project_id=client_of(request).project_id, status=query.get("status"), invoice_id=query.get("invoice_id")
        ).select_related("regenerated_by")
        paginator = ListCursorPagination(ordering="-id")
        page = paginator.paginate_queryset(sessions, request, self)
        return paginator.get_paginated_response(HostedSessionOutputSerializer(page, many=True).data)


class HostedSessionDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_READ

    @extend_schema(
        operation_id="billing_session_detail",
        summary="One hosted session of an invoice",
        description="Read `updated_at` here before a regenerate: it is the token that request sends back.",
        parameters=[_SESSION_ID],
        responses={
            200: HostedSessionOutputSerializer,
            403: OpenApiResponse(description="The key lacks `billing:read`."),
            404: OpenApiResponse(description="No such session in your project."),
        },
        examples=[
            OpenApiExample("Open", value=_SESSION_EXAMPLE),
            OpenApiExample("Expired, with Stripe's recovery link", value=_EXPIRED_EXAMPLE),
        ],
    )
    def get(self, request: Request, session_id: int) -> Response:
        session = selectors.hosted_session_get(project_id=client_of(request).project_id, session_id=session_id)
        if session is None:
            raise Http404
        return Response(HostedSessionOutputSerializer(session).data)


class HostedSessionRegenerateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_WRITE
    calls_stripe = True

    class InputSerializer(serializers.Serializer[Any]):
        updated_at = InstantField(help_text="The session's `updated_at` exactly as you read it (the optimistic lock).")

    @extend_schema(
        operation_id="billing_session_regenerate",
        summary="Replace a session by a new one for the same invoice (optimistic lock)",
        description=(
            "Send the `updated_at` you read. If the session changed since (another regenerate, a webhook, the sweep), "
            "the answer is 409 and nothing changes, here or at Stripe: read it again and decide again. Otherwise the "
            "session becomes `regenerated`, is expired at Stripe if it was still open, and a new session for the same "
            "invoice is created (201, `regenerated_from` names the old one). Of two regenerations sent with the same "
            "`updated_at`, exactly one succeeds. Only `open`, `expired` and `abandoned` sessions of an invoice that "
            "is not `paid` or `void` can be regenerated."
        ),
        parameters=[_SESSION_ID],
        request=InputSerializer,
        responses={
            201: OpenApiResponse(
                response=HostedSessionOutputSerializer, description="The new session; `Location` is its URL."
            ),
            400: OpenApiResponse(description="`updated_at` is missing or not an instant; or Stripe refused."),
            403: OpenApiResponse(description="The key lacks `billing:write`."),
            404: OpenApiResponse(description="No such session in your project."),
            409: OpenApiResponse(
                description="Stale `updated_at`; or the session cannot be regenerated (its status), or its invoice is "
                "paid or void; or it was paid at Stripe meanwhile; or the Idempotency-Key was used with another body."
            ),
            502: _STRIPE_FAILED,
        },
        examples=[
            OpenApiExample(
                "Regenerate what you read", request_only=True, value={"updated_at": "2026-11-24T10:00:04.288170Z"}
            ),
            OpenApiExample("Created", response_only=True, status_codes=["201"], value=_REGENERATED_EXAMPLE),
            OpenApiExample(
                "Stale",
                response_only=True,
                status_codes=["409"],
                value={
                    "detail": "Session #41 changed since you read it (updated_at is not 2026-11-24T10:00:04.288170Z "
                    "any more): read it again and retry."
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request, session_id: int) -> Response:
        values = validated_input(request, self.InputSerializer)
        if selectors.hosted_session_get(project_id=client_of(request).project_id, session_id=session_id) is None:
            raise Http404
        session = services.hosted_session_regenerate(
            session_id=session_id, expected_updated_at=values["updated_at"], actor=_actor(request)
        )
        return _created(session)
