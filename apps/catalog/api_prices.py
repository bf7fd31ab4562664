"""The project's Stripe prices, their feature codes, and pulling the catalog from Stripe now."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog import selectors, services
from apps.catalog.models import FEATURE_CODE_PATTERN
from apps.catalog.sync import catalog_sync
from apps.common.pagination import paginate_sorted
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER
from apps.projects.permissions import CLIENT_PERMISSIONS, client_of, client_project, validated_input

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
        parameters=[LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={200: OutputSerializer},
        examples=[OpenApiExample("One page", value={"results": [_PRICE_EXAMPLE], "next_cursor": None})],
    )
    def get(self, request: Request) -> Response:
        prices = selectors.project_prices(project_id=client_of(request).project_id)
        return Response(paginate_sorted(request, prices, key=lambda p: p["price_id"], render=dict))


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


class CatalogSyncApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    calls_stripe = True  # the schema declares its 502
    required_scopes = ("catalog:write",)

    class OutputSerializer(serializers.Serializer[Any]):
        products = serializers.IntegerField()
        prices = serializers.IntegerField()

    @extend_schema(
        operation_id="catalog_sync",
        summary="Pull the project's products and prices from Stripe now",
        request=None,
        responses={200: OutputSerializer},
        examples=[OpenApiExample("Synced", value={"products": 2, "prices": 3})],
    )
    def post(self, request: Request) -> Response:
        report = catalog_sync(project=client_project(request))
        return Response({"products": report.products, "prices": report.prices})


urlpatterns = [
    path("catalog/prices", CatalogPriceListApi.as_view(), name="catalog-prices"),
    path("catalog/prices/<str:price_id>/feature", CatalogPriceFeatureSetApi.as_view(), name="catalog-price-feature"),
    path("catalog/sync", CatalogSyncApi.as_view(), name="catalog-sync"),
]
