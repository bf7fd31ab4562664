"""Invoices: create (billing:write), list and read (billing:read), void and mark uncollectible (billing:write).

One view per operation; `GET` and `POST /billing/invoices` share their path through
`routes_by_method`. The OpenAPI examples are in apps/checkout/invoices/api_examples.py. Everything
is scoped to the key's project: another project's invoice is a 404.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.checkout.invoices import api_examples, selectors, services
from apps.checkout.invoices.pricing import QUANTITY_MAX, ROUNDING
from apps.checkout.models import Invoice
from apps.common.api import client_of, client_project, validated_input
from apps.common.idempotency import idempotent
from apps.common.pagination import BAD_PAGE_QUERY, ListCursorPagination
from apps.common.query import InstantField, QueryTextField, validated_query
from apps.common.routing import routes_by_method
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER
from apps.projects.permissions import CLIENT_PERMISSIONS
from apps.projects.selectors import ApiClient

BILLING_READ = ("billing:read",)
BILLING_WRITE = ("billing:write",)
ID_MAX = 2**63 - 1  # a bigint primary key
ITEMS_MAX = 100
LINES_MAX = 100
USER_ID_MAX = 255
# API.md's path of the sessions list (apps/checkout/hosted), filtered to one invoice.
SESSIONS_PATH = "/api/v1/billing/sessions"

_NOT_FOUND = OpenApiResponse(description="No such invoice in your project (another project's invoice is a 404 too).")


def invoice_url(invoice: Invoice) -> str:
    return reverse("invoice-detail", kwargs={"invoice_id": invoice.pk})


def _actor(client: ApiClient) -> str:
    return f"app:{client.app_name} (key {client.key_prefix})"


def _id_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=ID_MAX, **kwargs)


# --- answers ------------------------------------------------------------------------------------


class InvoiceLineOptionSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    group_id = serializers.IntegerField()
    group = serializers.CharField(help_text="The option group's name.")
    delta = serializers.IntegerField(help_text="Added to the unit amount (minor units).")


class InvoiceLineAddOnSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    delta = serializers.IntegerField(help_text="Added to the unit amount (minor units).")


class InvoiceLinePlanSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    billing_cycle = serializers.CharField()
    multiplier = serializers.CharField(
        allow_null=True, help_text='A decimal string ("0.95"), or null for a delta plan.'
    )
    delta = serializers.IntegerField(allow_null=True, help_text="Minor units, or null for a multiplier plan.")


class InvoiceLinePlanStepSerializer(InvoiceLinePlanSerializer):
    exact = serializers.CharField(
        required=False, help_text="Multiplier plans: before_plan x multiplier, exactly, before its one rounding."
    )
    rounding = serializers.CharField(required=False, help_text=f"Multiplier plans: `{ROUNDING}`.")


class InvoiceLineBreakdownSerializer(serializers.Serializer[Any]):
    currency = serializers.CharField()
    base = serializers.IntegerField(help_text="The product's unit_amount.")
    options = InvoiceLineOptionSerializer(many=True)
    add_ons = InvoiceLineAddOnSerializer(many=True)
    before_plan = serializers.IntegerField(help_text="base + the options' and add-ons' deltas.")
    plan = InvoiceLinePlanStepSerializer(allow_null=True)
    unit_amount = serializers.IntegerField()
    quantity = serializers.IntegerField()
    line_total = serializers.IntegerField(help_text="unit_amount x quantity.")


class InvoiceLineOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    position = serializers.IntegerField(help_text="The line's index in the request.")
    product_id = serializers.IntegerField()
    product_name = serializers.CharField(help_text="As it was when the invoice was created.")
    quantity = serializers.IntegerField()
    base_amount = serializers.IntegerField()
    unit_amount = serializers.IntegerField(help_text="One unit after options, add-ons and plan (minor units).")
    line_total = serializers.IntegerField()
    options = InvoiceLineOptionSerializer(many=True)
    add_ons = InvoiceLineAddOnSerializer(many=True)
    plan = InvoiceLinePlanSerializer(allow_null=True)
    custom_fields = serializers.DictField(help_text="The values as validated (text trimmed, numbers as integers).")
    breakdown = InvoiceLineBreakdownSerializer(help_text="The arithmetic, step by step, as stored.")
    feature_code = serializers.CharField(help_text="What paying this line entitles to (empty: nothing).")
    purchase_duration_days = serializers.IntegerField(allow_null=True, help_text="null: for life.")


class InvoiceOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="This invoice (GET).")
    project_id = serializers.IntegerField()
    user_id = serializers.CharField()
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=Invoice.Status.choices)
    subtotal = serializers.IntegerField(help_text="Σ line_total (minor units).")
    total = serializers.IntegerField(help_text="What the customer pays (minor units); equal to subtotal.")
    due_at = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True)
    marked_uncollectible_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    lines = InvoiceLineOutputSerializer(many=True)
    sessions_url = serializers.SerializerMethodField(help_text="The invoice's hosted checkout sessions (GET).")

    def get_url(self, invoice: Invoice) -> str:
        return invoice_url(invoice)

    def get_sessions_url(self, invoice: Invoice) -> str:
        return f"{SESSIONS_PATH}?invoice_id={invoice.pk}"


def _answer(project_id: int, invoice_id: int, code: int = status.HTTP_200_OK) -> Response:
    invoice = selectors.invoice_get(project_id=project_id, invoice_id=invoice_id)
    return Response(InvoiceOutputSerializer(invoice).data, status=code)


def _invoice_of(request: Request, invoice_id: int) -> Invoice:
    invoice = selectors.invoice_get(project_id=client_of(request).project_id, invoice_id=invoice_id)
    if invoice is None:
        raise Http404
    return invoice


# --- create -------------------------------------------------------------------------------------


class InvoiceLineInputSerializer(serializers.Serializer[Any]):
    product_id = _id_field(help_text="The product's numeric `id` (GET /api/v1/products); a slug is not accepted.")
    option_ids = serializers.ListField(
        child=_id_field(),
        max_length=ITEMS_MAX,
        default=list,
        allow_null=True,
        help_text="Options of the product's groups: at most one per `single` group, one for each `required` group.",
    )
    add_on_ids = serializers.ListField(
        child=_id_field(), max_length=ITEMS_MAX, default=list, allow_null=True, help_text="Add-ons of the product."
    )
    plan_id = _id_field(allow_null=True, default=None, help_text="A subscription plan of the product, or null.")
    quantity = serializers.IntegerField(min_value=1, max_value=QUANTITY_MAX, default=1)
    custom_fields = serializers.DictField(
        default=dict,
        allow_null=True,
        help_text="Values for the product's custom fields, by key (required ones must be present).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # null means none, as an omitted collection does.
        for name, empty in (("option_ids", list), ("add_on_ids", list), ("custom_fields", dict)):
            if attrs.get(name) is None:
                attrs[name] = empty()
        return attrs


class InvoiceCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_WRITE

    class InputSerializer(serializers.Serializer[Any]):
        user_id = serializers.CharField(max_length=USER_ID_MAX, help_text="Your app's id for the user.")
        project_id = serializers.IntegerField(help_text="Must be your key's project.")
        currency = serializers.RegexField(
            r"^[a-z]{3}$",
            help_text="Lower-case ISO 4217; every line's product must be priced in it.",
            error_messages={"invalid": "A currency is a lower-case ISO 4217 code, such as usd."},
        )
        lines = InvoiceLineInputSerializer(many=True, min_length=1, max_length=LINES_MAX)  # type: ignore[call-arg]
        due_at = InstantField(required=False, allow_null=True, help_text="Optional; in the future.")

    @extend_schema(
        operation_id="invoice_create",
        summary="Bill a user for configured products: a draft invoice with computed totals (scope billing:write)",
        description=(
            "Each line prices a product of your catalog: its `unit_amount`, plus each chosen option's and add-on's "
            "`price_delta`; then the plan: a multiplier plan multiplies that unit amount and rounds once, half to "
            "even, to the minor unit (7172.5 → 7172, 507.5 → 508); a delta plan adds its delta. `line_total` = "
            f"unit x quantity (1 to {QUANTITY_MAX}); every amount must stay within 0..99999999. Each line's "
            "`breakdown` shows the arithmetic. Any problem in any line is a 400 naming it by position "
            '(`{"lines": {"0": {"option_ids": {"1": ["..."]}}}}`) and nothing is written. The invoice starts as '
            "`draft`; creating its hosted checkout session makes it `open`."
        ),
        request=InputSerializer,
        responses={
            201: InvoiceOutputSerializer,
            400: OpenApiResponse(
                description="Invalid input, named by its path: an option of another product, two options in a "
                "single-choice group, a required group or custom field missing, a bad custom field value, an "
                "amount out of range, a currency mismatch. Nothing was written."
            ),
        },
        examples=api_examples.INVOICE_CREATE,
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        client = client_of(request)
        invoice = services.invoice_create(
            project=client_project(request),
            user_id=values["user_id"],
            currency=values["currency"],
            lines=values["lines"],
            due_at=values.get("due_at"),
            actor=_actor(client),
        )
        return _answer(client.project_id, invoice.pk, status.HTTP_201_CREATED)


# --- read ---------------------------------------------------------------------------------------


class InvoiceListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_READ

    class QuerySerializer(serializers.Serializer[Any]):
        status = serializers.ChoiceField(choices=Invoice.Status.choices, required=False, help_text="Only this status.")
        user_id = QueryTextField(max_length=USER_ID_MAX, required=False, help_text="Only this user's invoices.")

    class OutputSerializer(serializers.Serializer[Any]):
        results = InvoiceOutputSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="invoice_list",
        summary="Your project's invoices, newest first (scope billing:read)",
        description="Paginated (`limit`, `cursor`), newest first; filter by `status` and `user_id`.",
        parameters=[QuerySerializer, LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={200: OutputSerializer, 400: OpenApiResponse(description=f"A bad filter, or {BAD_PAGE_QUERY}")},
        examples=api_examples.INVOICE_LIST,
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, self.QuerySerializer)
        invoices = selectors.invoice_list(
            project_id=client_of(request).project_id, status=query.get("status"), user_id=query.get("user_id")
        )
        paginator = ListCursorPagination(ordering="-id")
        page = paginator.paginate_queryset(invoices, request, self)
        return paginator.get_paginated_response(InvoiceOutputSerializer(page, many=True).data)


class InvoiceDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_READ

    @extend_schema(
        operation_id="invoice_retrieve",
        summary="One of your invoices with its lines and their breakdown (scope billing:read)",
        responses={200: InvoiceOutputSerializer, 404: _NOT_FOUND},
        examples=api_examples.INVOICE_RETRIEVE,
    )
    def get(self, request: Request, invoice_id: int) -> Response:
        return Response(InvoiceOutputSerializer(_invoice_of(request, invoice_id)).data)


# --- status moves -------------------------------------------------------------------------------


class InvoiceVoidApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_WRITE

    @extend_schema(
        operation_id="invoice_void",
        summary="Void a draft, open or uncollectible invoice (scope billing:write)",
        description="No body. The invoice can no longer be paid; the change is audited.",
        request=None,
        responses={
            200: InvoiceOutputSerializer,
            404: _NOT_FOUND,
            409: OpenApiResponse(
                description="The invoice is paid or already void: the detail names its status; nothing changed."
            ),
        },
        examples=api_examples.INVOICE_VOID,
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        invoice = _invoice_of(request, invoice_id)
        services.invoice_void(invoice=invoice, actor=_actor(client_of(request)))
        return _answer(invoice.project_id, invoice.pk)


class InvoiceMarkUncollectibleApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = BILLING_WRITE

    @extend_schema(
        operation_id="invoice_mark_uncollectible",
        summary="Mark an open invoice uncollectible (scope billing:write)",
        description="No body. It can still be paid (as at Stripe) or voided afterwards; the change is audited.",
        request=None,
        responses={
            200: InvoiceOutputSerializer,
            404: _NOT_FOUND,
            409: OpenApiResponse(
                description="The invoice is not open (draft, paid, void or already uncollectible): the detail names "
                "its status; nothing changed."
            ),
        },
        examples=api_examples.INVOICE_MARK_UNCOLLECTIBLE,
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        invoice = _invoice_of(request, invoice_id)
        services.invoice_mark_uncollectible(invoice=invoice, actor=_actor(client_of(request)))
        return _answer(invoice.project_id, invoice.pk)


invoices_route = routes_by_method(InvoiceListApi, InvoiceCreateApi)
