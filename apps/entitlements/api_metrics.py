"""Subscription counts and revenue per project (scope billing:read), from our own records."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.entitlements.api import instant_param
from apps.entitlements.models import RevenueEntry, SubscriptionRecord
from apps.entitlements.projection import ENTITLING_STATUSES
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
        records = SubscriptionRecord.objects.filter(project_id=project_id)
        by_status = dict(records.values_list("status").annotate(n=Count("id")).order_by("status"))
        by_price: dict[str, int] = {}
        for price_ids in records.filter(status__in=ENTITLING_STATUSES).values_list("price_ids", flat=True):
            for price_id in price_ids:
                by_price[price_id] = by_price.get(price_id, 0) + 1
        active = sum(count for state, count in by_status.items() if state in ENTITLING_STATUSES)
        return Response(
            {"project_id": project_id, "active_subscriptions": active, "by_status": by_status, "by_price": by_price}
        )


class RevenueMetricsApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("billing:read",)

    class RevenueLineSerializer(serializers.Serializer[Any]):
        currency = serializers.CharField()
        gross = serializers.IntegerField(help_text="Minor units.")
        refunded = serializers.IntegerField(help_text="Minor units.")
        net = serializers.IntegerField(help_text="Minor units.")

    class OutputSerializer(serializers.Serializer[Any]):
        project_id = serializers.IntegerField()
        revenue = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="metrics_revenue",
        summary="Gross, refunded and net revenue per currency, in minor units",
        parameters=[
            OpenApiParameter(
                "from", {"type": "string", "format": "date-time"}, description="ISO 8601 instant, inclusive."
            ),
            OpenApiParameter(
                "to", {"type": "string", "format": "date-time"}, description="ISO 8601 instant, exclusive."
            ),
        ],
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
        entries = RevenueEntry.objects.filter(project_id=project_id)
        for name, lookup in (("from", "occurred_at__gte"), ("to", "occurred_at__lt")):
            instant = instant_param(request, name)
            if instant is not None:
                entries = entries.filter(**{lookup: instant})
        totals = (
            entries.values("currency")
            .annotate(
                gross=Sum("amount", filter=Q(kind=RevenueEntry.Kind.PAYMENT), default=0),
                refunded=Sum("amount", filter=Q(kind=RevenueEntry.Kind.REFUND), default=0),
            )
            .order_by("currency")
        )
        revenue = [
            {
                "currency": t["currency"],
                "gross": t["gross"],
                "refunded": t["refunded"],
                "net": t["gross"] - t["refunded"],
            }
            for t in totals
        ]
        return Response({"project_id": project_id, "revenue": revenue})
