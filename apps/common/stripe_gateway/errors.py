"""Our own exceptions for Stripe failures, answered by the API as 400 or 502 (API.md)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException


class StripeInvalidRequest(APIException):
    """Stripe refused the request as invalid: the caller can fix it. 400 with Stripe's message."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Stripe rejected the request."
    default_code = "stripe_invalid_request"

    def __init__(self, message: str, *, param: str | None = None, stripe_request_id: str | None = None) -> None:
        super().__init__(detail=f"Stripe: {message}")
        self.param = param
        self.stripe_request_id = stripe_request_id


class StripeUnavailable(APIException):
    """Stripe could not be reached, kept failing, or refused our credentials. 502."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "Stripe is unavailable; retry later."
    default_code = "stripe_unavailable"

    def __init__(self, message: str, *, stripe_request_id: str | None = None) -> None:
        super().__init__(detail=message)
        self.stripe_request_id = stripe_request_id

    @property
    def response_extra(self) -> dict[str, str | None]:
        """Added to the 502 body, so a caller can quote Stripe's own request id to support."""
        return {"stripe_request_id": self.stripe_request_id}
