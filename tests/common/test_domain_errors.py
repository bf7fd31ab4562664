"""The services' own errors (apps/common/exceptions.py) answer the API as DRF's exceptions did:
the same status codes and the same bodies, mapped once by api_exception_handler."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.test import Client
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.exceptions import Conflict, NestedValidationError, NotFound, ServiceError
from apps.common.stripe_gateway import StripeInvalidRequest, StripeUnavailable
from apps.entitlements.grants import grant_create
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db

RAISED: dict[str, Callable[[], Exception]] = {
    "fields": lambda: ValidationError({"price_id": ["Price p_1 is not active."]}),
    "no-field": lambda: ValidationError("Give at least one id."),
    "model-clean": lambda: ValidationError({NON_FIELD_ERRORS: ["valid_to must be after valid_from."]}),
    "nested": lambda: NestedValidationError({"configuration": {"option_groups": {0: {"id": ["7 is not an item."]}}}}),
    "not-found": lambda: NotFound("Price p_1 is not in this project's catalog."),
    "not-found-default": lambda: NotFound(),
    "conflict": lambda: Conflict("User u1 already has an active subscription."),
    "stripe-invalid": lambda: StripeInvalidRequest("No such price: p_1", param="price", stripe_request_id="req_1"),
    "stripe-down": lambda: StripeUnavailable("Stripe is unavailable; retry later.", stripe_request_id="req_2"),
}


class RaisingView(APIView):
    """Raises the error named in the path, as a service called by a view would."""

    authentication_classes = ()
    permission_classes = ()

    def post(self, request: Request, name: str) -> Response:
        raise RAISED[name]()


urlpatterns = [path("api/v1/raise/<str:name>", RaisingView.as_view()), path("", include("billing_service.urls"))]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("name", "status", "body"),
    [
        ("fields", 400, {"price_id": ["Price p_1 is not active."]}),
        ("no-field", 400, ["Give at least one id."]),
        ("model-clean", 400, {"non_field_errors": ["valid_to must be after valid_from."]}),
        ("nested", 400, {"configuration": {"option_groups": {"0": {"id": ["7 is not an item."]}}}}),
        ("not-found", 404, {"detail": "Price p_1 is not in this project's catalog."}),
        ("not-found-default", 404, {"detail": "Not found."}),
        ("conflict", 409, {"detail": "User u1 already has an active subscription."}),
        ("stripe-invalid", 400, {"detail": "Stripe: No such price: p_1"}),
        ("stripe-down", 502, {"detail": "Stripe is unavailable; retry later.", "stripe_request_id": "req_2"}),
    ],
)
def test_each_domain_error_is_answered_in_drfs_shape_with_its_status(
    client: Client, name: str, status: int, body: object
) -> None:
    response = client.post(f"/api/v1/raise/{name}", data={}, content_type="application/json")
    assert response.status_code == status
    assert response.json() == body


def test_the_domain_errors_are_plain_exceptions_whose_text_is_their_detail() -> None:
    # str(exc) is what a failed row stores as its last_error, as it was with DRF's exceptions.
    error = StripeInvalidRequest("No such price: p_1")
    assert isinstance(error, ServiceError) and not hasattr(error, "get_full_details")
    assert str(error) == "Stripe: No such price: p_1" == error.detail
    assert StripeUnavailable("down", stripe_request_id="req_3").response_extra == {"stripe_request_id": "req_3"}


def test_nested_errors_read_flattened_by_djangos_own_readers() -> None:
    error = NestedValidationError({"option_groups": {0: {"id": ["7 is not an item."], "options": {1: {"id": ["x"]}}}}})
    assert error.message_dict == {"option_groups": ["0.id: 7 is not an item.", "0.options.1.id: x"]}


def test_a_service_refuses_with_djangos_validation_error_naming_the_field(alice: Tenant) -> None:
    with pytest.raises(ValidationError) as caught:
        grant_create(project=alice.project, user_id="u1", feature_code="nope", granted_by="t", reason="r")
    assert list(caught.value.message_dict) == ["feature_code"]
