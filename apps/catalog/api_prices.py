"""The project's Stripe prices, their feature codes, and catalog sync runs (pulling the catalog from Stripe)."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog import selectors, services
from apps.catalog.models import FEATURE_CODE_PATTERN, CatalogSyncRun
from apps.catalog.runs import catalog_sync_request
from apps.common.api import client_of, client_project, validated_input
from apps.common.pagination import BAD_PAGE_QUERY, ListCursorPagination
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER
from apps.projects.permissions import CLIENT_PERMISSIONS

_PRICE_EXAMPLE = {
    "price_id": "price_1PgafmB7WZ01zgkW6dKueIc5",
    "product_id": "prod_QXg1hqf4jFNsqG",
    "unit_amount": 1500,
    "currency": "usd",
    "recurring": {"interval": "month", "interval_count": 1},
    "active": True,
    "feature_code": "pro",
    "purchase_duration_days": None,
}


class CatalogPriceSerializer(serializers.Serializer[Any]):
    price_id = serializers.CharField()
    product_id = serializers.CharField()
    unit_amount = serializers.IntegerField(allow_null=True, help_text="Minor units.")
    currency = serializers.CharField()
    recurring = serializers.DictField(allow_null=True)
    active = serializers.BooleanField()
    feature_code = serializers.CharField(allow_null=True)
    purchase_duration_days = serializers.IntegerField(allow_null=True)


class CatalogPriceListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    class OutputSerializer(serializers.Serializer[Any]):
        results = CatalogPriceSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="catalog_prices_list",
        summary="The project's Stripe prices with their feature codes",
        description="Every mirrored price of your project's products, active or not, sorted by `price_id`.",
        parameters=[LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description=BAD_PAGE_QUERY),
        },
        examples=[OpenApiExample("One page", value={"results": [_PRICE_EXAMPLE], "next_cursor": None})],
    )
    def get(self, request: Request) -> Response:
        project_id = client_of(request).project_id
        paginator = ListCursorPagination(ordering="id")  # the Stripe price id
        page = paginator.paginate_queryset(selectors.project_price_queryset(project_id=project_id), request, self)
        return paginator.get_paginated_response(selectors.price_views(project_id=project_id, prices=page))


class CatalogPriceFeatureSetApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("catalog:write",)

    class InputSerializer(serializers.Serializer[Any]):
        feature_code = serializers.RegexField(FEATURE_CODE_PATTERN, max_length=64)
        purchase_duration_days = serializers.IntegerField(min_value=1, max_value=36_500, allow_null=True, default=None)

    @extend_schema(
        operation_id="catalog_price_feature_set",
        summary="Map a price to a feature code",
        description=(
            "What buying the price entitles to. `purchase_duration_days` is for one-time prices only: "
            "null means for life. A price that is not in your project's catalog is a 404."
        ),
        request=InputSerializer,
        responses={200: CatalogPriceSerializer},
        examples=[
            OpenApiExample(
                "Lifetime export", request_only=True, value={"feature_code": "export", "purchase_duration_days": None}
            ),
            OpenApiExample("The price", response_only=True, value=_PRICE_EXAMPLE),
        ],
    )
    def put(self, request: Request, price_id: str) -> Response:
        values = validated_input(request, self.InputSerializer)
        price = services.price_feature_set(project=client_project(request), price_id=price_id, **values)
        return Response(CatalogPriceSerializer(price).data)


_SYNC_RUN_EXAMPLE = {
    "id": 7,
    "url": "/api/v1/catalog/sync/7",
    "project_id": 1,
    "status": "succeeded",
    "counts": {"products": 2, "prices": 3, "skipped": 1},
    "error": "",
    "started_at": "2026-11-23T10:00:00Z",
    "finished_at": "2026-11-23T10:00:02Z",
}
_SYNC_ACCEPTED_EXAMPLE = {**_SYNC_RUN_EXAMPLE, "status": "running", "counts": {}, "finished_at": None}
_SYNC_FAILED_EXAMPLE = {
    **_SYNC_RUN_EXAMPLE,
    "status": "failed",
    "counts": {},
    "error": "StripeUnavailable: Stripe could not be reached after 3 attempts.",
}


def sync_run_url(run: CatalogSyncRun) -> str:
    return reverse("catalog-sync-run", kwargs={"run_id": run.pk})


class CatalogSyncRunSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="Where to poll this run (GET).")
    project_id = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=CatalogSyncRun.Status.choices, help_text="`running` until a worker finished it; then final."
    )
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text=(
            "Once succeeded: `products` and `prices` synced, `skipped` Stripe products of no known project. "
            "Empty before."
        ),
    )
    error = serializers.CharField(help_text="Why the run failed (empty otherwise).")
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, run: CatalogSyncRun) -> str:
        return sync_run_url(run)


class CatalogSyncApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("catalog:write",)

    @extend_schema(
        operation_id="catalog_sync",
        summary="Pull the project's products and prices from Stripe (answers 202; poll the run)",
        description=(
            "Starts a sync run that a worker does: it reads every Stripe product with your project's key and "
            "mirrors those of your project and their prices. Answers 202 at once with the run and its URL (also "
            "in `Location`); GET it until `status` is `succeeded` (with the counts) or `failed` (with `error`, "
            "for instance Stripe unavailable)."
        ),
        request=None,
        responses={
            202: OpenApiResponse(
                response=CatalogSyncRunSerializer,
                description="The run was created and handed to a worker. `Location` is its URL.",
            )
        },
        examples=[OpenApiExample("Accepted", value=_SYNC_ACCEPTED_EXAMPLE, status_codes=["202"])],
    )
    def post(self, request: Request) -> Response:
        client = client_of(request)
        run = catalog_sync_request(
            project=client_project(request), requested_by=f"app:{client.app_name} (key {client.key_prefix})"
        )
        return Response(
            CatalogSyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": sync_run_url(run)}
        )


class CatalogSyncRunDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("catalog:write",)

    @extend_schema(
        operation_id="catalog_sync_run_detail",
        summary="A catalog sync run and its counts (poll until its status is final)",
        description=(
            "`running` while a worker syncs; then `succeeded` with `counts`, or `failed` with `error` (the sync "
            "raised, or the stale-run sweep found its worker gone). Another project's run is a 404."
        ),
        responses={200: CatalogSyncRunSerializer, 404: OpenApiResponse(description="No such run here.")},
        examples=[
            OpenApiExample("Succeeded", value=_SYNC_RUN_EXAMPLE),
            OpenApiExample("Still running", value=_SYNC_ACCEPTED_EXAMPLE),
            OpenApiExample("Failed", value=_SYNC_FAILED_EXAMPLE),
        ],
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = selectors.catalog_sync_run_get(project_id=client_of(request).project_id, run_id=run_id)
        if run is None:
            raise Http404
        return Response(CatalogSyncRunSerializer(run).data)


urlpatterns = [
    path("catalog/prices", CatalogPriceListApi.as_view(), name="catalog-prices"),
    path("catalog/prices/<str:price_id>/feature", CatalogPriceFeatureSetApi.as_view(), name="catalog-price-feature"),
    path("catalog/sync", CatalogSyncApi.as_view(), name="catalog-sync"),
    path("catalog/sync/<int:run_id>", CatalogSyncRunDetailApi.as_view(), name="catalog-sync-run"),
]
