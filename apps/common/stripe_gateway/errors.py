"""Our own exceptions for Stripe failures, answered by the API as 400 or 502 (API.md).

Plain exceptions (no web framework): apps/common/errors.py maps every ServiceError to its answer.
"""

from __future__ import annotations

from apps.common.exceptions import ServiceError


class StripeInvalidRequest(ServiceError):
    """Stripe refused the request as invalid: the caller can fix it. 400 with Stripe's message."""

    status_code = 400
    default_detail = "Stripe rejected the request."

    def __init__(self, message: str, *, param: str | None = None, stripe_request_id: str | None = None) -> None:
        super().__init__(f"Stripe: {message}")
        self.param = param
        self.stripe_request_id = stripe_request_id


class StripeUnavailable(ServiceError):
    """Stripe could not be reached, kept failing, or refused our credentials. 502."""

    status_code = 502
    default_detail = "Stripe is unavailable; retry later."

    def __init__(self, message: str, *, stripe_request_id: str | None = None) -> None:
        super().__init__(message)
        self.stripe_request_id = stripe_request_id

    @property
    def response_extra(self) -> dict[str, str | None]:
        """Added to the 502 body, so a caller can quote Stripe's own request id to support."""
        return {"stripe_request_id": self.stripe_request_id}
