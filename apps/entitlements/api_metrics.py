"""Subscription counts and revenue per project (scope billing:read), from our own records
(the aggregates are in selectors.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.query import InstantField, validated_query
from apps.entitlements.selectors import revenue_totals, subscription_counts
from apps.projects.permissions import CLIENT_PERMISSIONS


class SubscriptionMetricsApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("billing:read",)

    class OutputSerializer(serializers.Serializer[Any]):
        project_id = serializers.IntegerField()
        active_subscriptions = serializers.IntegerField(help_text="Active or trialing.")
        by_status = serializers.DictField(child=serializers.IntegerField())
        by_price = serializers.DictField(child=serializers.IntegerField(), help_text="Active or trialing, per price.")

    @extend_schema(
        operation_id="metrics_subscriptions",
        summary="Subscription counts by status and by price",
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample(
                "Counts",
                value={
                    "project_id": 1,
                    "active_subscriptions": 42,
                    "by_status": {"active": 40, "trialing": 2, "canceled": 5},
                    "by_price": {"price_1PgafmB7WZ01zgkW6dKueIc5": 42},
                },
            )
        ],
    )
    def get(self, request: Request, project_id: int) -> Response:
        return Response({"project_id": project_id, **subscription_counts(project_id=project_id)})


class RevenueMetricsApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("billing:read",)

    class RevenueLineSerializer(serializers.Serializer[Any]):
        currency = serializers.CharField()
        gross = serializers.IntegerField(help_text="Minor units.")
        refunded = serializers.IntegerField(help_text="Minor units.")
        net = serializers.IntegerField(help_text="Minor units.")

    class QuerySerializer(serializers.Serializer[Any]):
        def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
            # `from` is a Python keyword, so the fields are named here rather than as attributes.
            return {
                "from": InstantField(required=False, help_text="ISO 8601 instant, inclusive."),
                "to": InstantField(required=False, help_text="ISO 8601 instant, exclusive."),
            }

    class OutputSerializer(serializers.Serializer[Any]):
        project_id = serializers.IntegerField()
        revenue = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="metrics_revenue",
        summary="Gross, refunded and net revenue per currency, in minor units",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer},
        examples=[
            OpenApiExample(
                "Revenue",
                value={
                    "project_id": 1,
                    "revenue": [{"currency": "usd", "gross": 149900, "refunded": 1499, "net": 148401}],
                },
            )
        ],
    )
    def get(self, request: Request, project_id: int) -> Response:
        query = validated_query(request, self.QuerySerializer)
        revenue = revenue_totals(project_id=project_id, start=query.get("from"), end=query.get("to"))
        return Response({"project_id": project_id, "revenue": revenue})
