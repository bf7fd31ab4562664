"""Products and their configuration: list, read, create, update, replace the configuration.

Everything is scoped to the key's project: another project's product is a 404. Writes need the
`catalog:write` scope. Any invalid item rejects the whole request with a 400 naming it, and nothing
is written (the serializers validate everything; the services write in one transaction).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog import products
from apps.catalog.configuration import COLLECTIONS, configuration_replace
from apps.catalog.models import CatalogProduct
from apps.catalog.serializers import ConfigurationInputSerializer, ProductOutputSerializer, StrictIntegerField
from apps.common.idempotency import idempotent
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER
from apps.projects.permissions import CLIENT_PERMISSIONS, client_of, validated_input

CATALOG_WRITE = "catalog:write"
_READ_ERRORS = {
    401: OpenApiResponse(description="Missing, unknown, revoked or inactive API key."),
    404: OpenApiResponse(description="No such product in your project."),
    429: OpenApiResponse(description="Rate limited; see Retry-After."),
}
_WRITE_ERRORS = _READ_ERRORS | {
    400: OpenApiResponse(
        description="Invalid input; the body names the field or item, e.g. "
        '`{"configuration": {"option_groups": {"1": {"options": {"0": {"price_delta": ["..."]}}}}}}` '
        "(list items keyed by index). Nothing was written."
    ),
    403: OpenApiResponse(description="The key lacks catalog:write, or `Project ID does not match`."),
}

_CONFIGURATION_EXAMPLE: dict[str, Any] = {
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
_CONFIGURATION_OUT: dict[str, Any] = {
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
_PRODUCT_OUT: dict[str, Any] = {
    "id": 12,
    "slug": "website-audit",
    "name": "Website audit",
    "description": "A review of your site.",
    "active": True,
    "unit_amount": 4900,
    "currency": "usd",
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
    "configuration": _CONFIGURATION_OUT,
    "created_at": "2025-01-31T09:00:00Z",
    "updated_at": "2025-01-31T09:00:00Z",
}
_PATCH_CONFIGURATION_DOC = (
    "`configuration` is optional. Each collection it names (`option_groups`, `add_ons`, `custom_fields`, "
    "`subscription_plans`) replaces that collection as `PUT .../options` would: items with an `id` keep it, "
    "items without one are created, items left out are deleted. Collections it does not name are unchanged; "
    "`[]` empties one."
)


def _slug_not_a_number(value: str) -> None:
    # /products/{product} takes an id or a slug; an all-digit slug would be read as an id.
    if value.isdigit():
        raise serializers.ValidationError("A slug must contain a letter, '-' or '_' so it is not read as an id.")


def _base_fields(*, partial: bool) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    """The product's own fields: all optional in a PATCH, defaults for the optional ones in a POST."""

    def optional(default: Any) -> dict[str, Any]:
        return {"required": False} if partial else {"default": default}

    needed: dict[str, Any] = {"required": False} if partial else {}
    return {
        "slug": serializers.RegexField(
            r"^[a-z0-9][a-z0-9_-]*$", max_length=64, validators=[_slug_not_a_number], **needed
        ),
        "name": serializers.CharField(max_length=200, **needed),
        "description": serializers.CharField(allow_blank=True, **optional("")),
        "active": serializers.BooleanField(**optional(True)),
        "unit_amount": StrictIntegerField(
            min_value=0,
            max_value=99_999_999,
            allow_null=True,
            help_text="The base price in minor units; needs currency.",
            **optional(None),
        ),
        "currency": serializers.RegexField(r"^[a-z]{3}$", allow_blank=True, **optional("")),
    }


def _response(product: CatalogProduct, *, project_id: int, code: int = status.HTTP_200_OK) -> Response:
    fresh = products.product_get(project_id=project_id, product_id=product.pk)
    prices = products.product_prices(project_id=project_id, products=[fresh] if fresh else [])
    return Response(ProductOutputSerializer(fresh, context={"prices": prices}).data, status=code)


class ProductsApi(APIView):
    """GET lists and POST creates on one path; each method names its own scopes."""

    permission_classes = CLIENT_PERMISSIONS
    required_scopes: tuple[str, ...] = ()
    scopes_by_method = {"POST": (CATALOG_WRITE,)}

    class ListQuerySerializer(serializers.Serializer[Any]):
        limit = serializers.IntegerField(min_value=1, max_value=200, default=50)
        cursor = serializers.CharField(required=False, help_text="next_cursor of the previous page.")

    class ProductListOutputSerializer(serializers.Serializer[Any]):
        results = ProductOutputSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    class ProductCreateInputSerializer(serializers.Serializer[Any]):
        project_id = serializers.IntegerField(required=False, help_text="Optional; must be your key's project.")
        configuration = ConfigurationInputSerializer(required=False)

        def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
            return _base_fields(partial=False) | super().get_fields()

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            errors = products.product_amount_errors(unit_amount=attrs["unit_amount"], currency=attrs["currency"])
            if errors:
                raise serializers.ValidationError(errors)
            return attrs

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.required_scopes = self.scopes_by_method.get(request.method or "", ())
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="product_list",
        summary="Your project's products, with their Stripe prices and configuration",
        parameters=[LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={200: ProductListOutputSerializer, 400: OpenApiResponse(description="A bad limit or cursor.")}
        | {code: r for code, r in _READ_ERRORS.items() if code != 404},
        examples=[
            OpenApiExample("A page", value={"results": [_PRODUCT_OUT], "next_cursor": "aWQ6MTI"}, response_only=True)
        ],
    )
    def get(self, request: Request) -> Response:
        # A plain dict, not the QueryDict: DRF reads an empty form value as "absent", and `?cursor=`
        # must be refused like any other malformed cursor.
        query = self.ListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        after_id = None
        if "cursor" in query.validated_data:
            try:
                after_id = products.cursor_decode(query.validated_data["cursor"])
            except ValueError:
                raise serializers.ValidationError({"cursor": ["Invalid cursor."]}) from None
        project_id = client_of(request).project_id
        page, next_after = products.product_page(
            project_id=project_id, after_id=after_id, limit=query.validated_data["limit"]
        )
        prices = products.product_prices(project_id=project_id, products=page)
        return Response(
            {
                "results": ProductOutputSerializer(page, many=True, context={"prices": prices}).data,
                "next_cursor": products.cursor_encode(next_after) if next_after is not None else None,
            }
        )

    @extend_schema(
        operation_id="product_create",
        summary="Create a product, optionally with its configuration (scope catalog:write)",
        description="A slug already used in your project is a 400 naming `slug`. Any invalid configuration item "
        "rejects the whole request (400, naming the item) and nothing is created.",
        request=ProductCreateInputSerializer,
        responses={201: ProductOutputSerializer} | {code: r for code, r in _WRITE_ERRORS.items() if code != 404},
        examples=[
            OpenApiExample(
                "A product with options",
                value={
                    "slug": "website-audit",
                    "name": "Website audit",
                    "unit_amount": 4900,
                    "currency": "usd",
                    "configuration": _CONFIGURATION_EXAMPLE,
                },
                request_only=True,
            ),
            OpenApiExample("Created", value=_PRODUCT_OUT, response_only=True, status_codes=["201"]),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.ProductCreateInputSerializer)
        project_id = client_of(request).project_id
        product = products.product_create(project_id=project_id, data=values)
        return _response(product, project_id=project_id, code=status.HTTP_201_CREATED)


def _product_of(request: Request, product: str) -> CatalogProduct:
    """The key's project's product named by its numeric id or its slug (slugs are never all digits)."""
    project_id = client_of(request).project_id
    if product.isascii() and product.isdigit():
        found = products.product_get(project_id=project_id, product_id=int(product))
    else:
        found = products.product_get_by_slug(project_id=project_id, slug=product)
    if found is None:
        raise Http404
    return found


_PRODUCT_PARAMETER = OpenApiParameter(
    "product",
    {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "maxLength": 64},
    OpenApiParameter.PATH,
    description="The product's numeric `id` or its `slug` (a slug is never all digits, so neither hides the other).",
    examples=[OpenApiExample("By slug", value="pro"), OpenApiExample("By id", value="1")],
)


class ProductDetailApi(APIView):
    """GET reads and PATCH changes one product, named by id or by slug on one path."""

    permission_classes = CLIENT_PERMISSIONS
    required_scopes: tuple[str, ...] = ()
    scopes_by_method = {"PATCH": (CATALOG_WRITE,)}

    class ProductUpdateInputSerializer(serializers.Serializer[Any]):
        project_id = serializers.IntegerField(required=False, help_text="Optional; must be your key's project.")
        configuration = ConfigurationInputSerializer(required=False, help_text=_PATCH_CONFIGURATION_DOC)

        def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
            return _base_fields(partial=True) | super().get_fields()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.required_scopes = self.scopes_by_method.get(request.method or "", ())
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="product_retrieve",
        summary="One of your products by id or slug, with prices and configuration (404 for another project's)",
        parameters=[_PRODUCT_PARAMETER],
        responses={200: ProductOutputSerializer} | _READ_ERRORS,
        examples=[OpenApiExample("A configured product", value=_PRODUCT_OUT)],
    )
    def get(self, request: Request, product: str) -> Response:
        found = _product_of(request, product)
        return _response(found, project_id=found.project_id)

    @extend_schema(
        operation_id="product_update",
        summary="Change a product's base fields and, optionally, configuration collections (scope catalog:write)",
        description="The product is named by its id or its slug. Only the fields you send change. "
        + _PATCH_CONFIGURATION_DOC,
        parameters=[_PRODUCT_PARAMETER],
        request=ProductUpdateInputSerializer,
        responses={200: ProductOutputSerializer} | _WRITE_ERRORS,
        examples=[
            OpenApiExample(
                "Rename, and replace only the add-ons",
                value={"name": "Website audit (2025)", "configuration": {"add_ons": _CONFIGURATION_EXAMPLE["add_ons"]}},
                request_only=True,
            ),
            OpenApiExample("Updated", value=_PRODUCT_OUT, response_only=True),
        ],
    )
    def patch(self, request: Request, product: str) -> Response:
        found = _product_of(request, product)
        values = validated_input(request, self.ProductUpdateInputSerializer)
        products.product_update(product=found, data=values)
        return _response(found, project_id=found.project_id)


class ProductOptionsReplaceApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = (CATALOG_WRITE,)

    @extend_schema(
        operation_id="product_options_replace",
        summary="Replace a product's whole configuration in one transaction (scope catalog:write)",
        description="Collections you leave out are deleted. Items with an `id` keep it (invoices refer to option "
        "ids); an option's id must be an option of the group it is listed under; an id of another product is a 400. "
        "Any invalid item rejects the whole request and nothing changes.",
        request=ConfigurationInputSerializer,
        responses={200: ProductOutputSerializer} | _WRITE_ERRORS,
        examples=[
            OpenApiExample("A whole configuration", value=_CONFIGURATION_EXAMPLE, request_only=True),
            OpenApiExample("Replaced", value=_PRODUCT_OUT, response_only=True),
        ],
    )
    def put(self, request: Request, product_id: int) -> Response:
        project_id = client_of(request).project_id
        product = products.product_get(project_id=project_id, product_id=product_id)
        if product is None:
            raise Http404
        configuration = validated_input(request, ConfigurationInputSerializer)
        configuration_replace(product=product, configuration=configuration, collections=COLLECTIONS)
        return _response(product, project_id=project_id)


# One template per route (OpenAPI forbids /products/{product_id} beside /products/{slug}): the
# product is named by id or slug, and `<slug:>` matches both.
urlpatterns: list[URLPattern] = [
    path("products", ProductsApi.as_view(), name="products"),
    path("products/<int:product_id>/options", ProductOptionsReplaceApi.as_view(), name="product-options"),
    path("products/<slug:product>", ProductDetailApi.as_view(), name="product-detail"),
]
