"""Products and their configuration: list, create, read, update, replace the configuration.

One view per operation; `GET` and `POST /products` share their path through `routes_by_method`.
The OpenAPI examples are in apps/catalog/api_examples.py.

Everything is scoped to the key's project: another project's product is a 404. Writes need the
`catalog:write` scope. Any invalid item rejects the whole request with a 400 naming it, and nothing
is written (the serializers validate everything; the services write in one transaction).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import URLPattern, path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog import api_examples, products
from apps.catalog.configuration import COLLECTIONS, configuration_replace
from apps.catalog.models import FEATURE_CODE_PATTERN, CatalogProduct
from apps.catalog.serializers import ConfigurationInputSerializer, ProductOutputSerializer, StrictIntegerField
from apps.common.api import client_of, validated_input
from apps.common.idempotency import idempotent
from apps.common.pagination import BAD_PAGE_QUERY, ListCursorPagination
from apps.common.routing import routes_by_method
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER
from apps.projects.permissions import CLIENT_PERMISSIONS

CATALOG_WRITE = "catalog:write"
PURCHASE_DURATION_MAX = 36_500  # days (the model's validator): a hundred years
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
        "feature_code": serializers.RegexField(
            FEATURE_CODE_PATTERN,
            max_length=64,
            allow_blank=True,
            help_text="What a paid invoice line of this product entitles to, as a purchase; empty: nothing.",
            **optional(""),
        ),
        "purchase_duration_days": StrictIntegerField(
            min_value=1,
            max_value=PURCHASE_DURATION_MAX,
            allow_null=True,
            help_text="How long that purchase lasts, in days; null: for life.",
            **optional(None),
        ),
    }


def _response(product: CatalogProduct, *, project_id: int, code: int = status.HTTP_200_OK) -> Response:
    fresh = products.product_get(project_id=project_id, product_id=product.pk)
    prices = products.product_prices(project_id=project_id, products=[fresh] if fresh else [])
    return Response(ProductOutputSerializer(fresh, context={"prices": prices}).data, status=code)


class ProductListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS

    class OutputSerializer(serializers.Serializer[Any]):
        results = ProductOutputSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="product_list",
        summary="Your project's products, with their Stripe prices and configuration",
        description="Sorted by `id`, paginated.",
        parameters=[LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description=BAD_PAGE_QUERY),
        }
        | {code: r for code, r in _READ_ERRORS.items() if code != 404},
        examples=api_examples.PRODUCT_LIST,
    )
    def get(self, request: Request) -> Response:
        project_id = client_of(request).project_id
        paginator = ListCursorPagination(ordering="id")
        page = paginator.paginate_queryset(products.product_queryset(project_id=project_id), request, self)
        prices = products.product_prices(project_id=project_id, products=page)
        return paginator.get_paginated_response(
            ProductOutputSerializer(page, many=True, context={"prices": prices}).data
        )


class ProductCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = (CATALOG_WRITE,)

    class InputSerializer(serializers.Serializer[Any]):
        project_id = serializers.IntegerField(required=False, help_text="Optional; must be your key's project.")
        configuration = ConfigurationInputSerializer(required=False)

        def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
            return _base_fields(partial=False) | super().get_fields()

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            errors = products.product_amount_errors(unit_amount=attrs["unit_amount"], currency=attrs["currency"])
            if errors:
                raise serializers.ValidationError(errors)
            return attrs

    @extend_schema(
        operation_id="product_create",
        summary="Create a product, optionally with its configuration (scope catalog:write)",
        description="A slug already used in your project is a 400 naming `slug`. Any invalid configuration item "
        "rejects the whole request (400, naming the item) and nothing is created.",
        request=InputSerializer,
        responses={201: ProductOutputSerializer} | {code: r for code, r in _WRITE_ERRORS.items() if code != 404},
        examples=api_examples.PRODUCT_CREATE,
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
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
    examples=api_examples.PRODUCT_PARAMETER,
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
        examples=api_examples.PRODUCT_RETRIEVE,
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
        examples=api_examples.PRODUCT_UPDATE,
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
        examples=api_examples.PRODUCT_OPTIONS_REPLACE,
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
    path("products", routes_by_method(ProductListApi, ProductCreateApi), name="products"),
    path("products/<int:product_id>/options", ProductOptionsReplaceApi.as_view(), name="product-options"),
    path("products/<slug:product>", ProductDetailApi.as_view(), name="product-detail"),
]
