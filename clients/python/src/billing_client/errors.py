"""The exceptions the client raises: one class per answer the caller may want to treat differently."""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    """Any failure of a call to the billing service.

    `status_code` is the HTTP status (None when no answer came back), `detail` the service's message
    (its `detail` field, or the field errors flattened to text) and `body` the parsed JSON answer.
    """

    def __init__(self, message: str, *, status_code: int | None = None, detail: str = "", body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.body = body


class BadRequest(BillingError):
    """400: the request was not valid; `body` holds DRF's field errors when there are some."""


class Unauthorized(BillingError):
    """401: the API key is missing, unknown, revoked or inactive."""


class Forbidden(BillingError):
    """403: another project's id, or a call outside the key's scopes."""


class NotFound(BillingError):
    """404: no such object in the key's project (for a portal session: no checkout completed yet)."""


class Conflict(BillingError):
    """409: a state that does not allow the call, or an Idempotency-Key reused with another body."""


class RateLimited(BillingError):
    """429 after the retries (or a Retry-After longer than the client will wait): `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(BillingError):
    """5xx after the retries; a 502 is a failure at Stripe and names its `stripe_request_id` when known."""

    def __init__(self, message: str, *, stripe_request_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.stripe_request_id = stripe_request_id


class ServiceUnavailable(BillingError):
    """No answer at all after the retries: the connection failed or timed out."""


class InvalidNotification(ValueError):
    """A notification body that is not the documented JSON envelope."""


class InvalidSignature(InvalidNotification):
    """A notification whose X-Billing-Signature is missing, malformed, too old or signed by no known secret."""


_BY_STATUS: dict[int, type[BillingError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def _detail_of(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        # DRF's field-error shape: {"field": ["message", ...], ...}
        parts = []
        for field, messages in body.items():
            text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
            parts.append(f"{field}: {text}")
        return ", ".join(parts)
    if body is None:
        return ""
    return str(body)


def error_for(status_code: int, body: Any, *, retry_after: float | None = None) -> BillingError:
    """The exception for a final (not retried, or retried to the end) non-2xx answer."""
    detail = _detail_of(body)
    message = f"billing service answered {status_code}" + (f": {detail}" if detail else "")
    fields: dict[str, Any] = {"status_code": status_code, "detail": detail, "body": body}
    if status_code == 429:
        return RateLimited(message, retry_after=retry_after, **fields)
    if status_code >= 500:
        request_id = body.get("stripe_request_id") if isinstance(body, dict) else None
        return ServerError(message, stripe_request_id=request_id if isinstance(request_id, str) else None, **fields)
    return _BY_STATUS.get(status_code, BillingError)(message, **fields)
