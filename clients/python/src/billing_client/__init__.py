"""Python client of the billing & entitlements service.

from billing_client import BillingClient
billing = BillingClient("https://billing.internal", api_key, project_id=1, notification_secrets=secret)
if billing.has_feature("user_42", "pro"): ...
"""

from billing_client._version import __version__
from billing_client.client import BillingClient, OnUnavailable
from billing_client.errors import (
    BadRequest,
    BillingError,
    Conflict,
    Forbidden,
    InvalidNotification,
    InvalidSignature,
    NotFound,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
)
from billing_client.models import CheckoutSession, CheckResult, Entitlement, Grant, Notification
from billing_client.signing import SIGNATURE_HEADER, signature_header

__all__ = [
    "SIGNATURE_HEADER",
    "BadRequest",
    "BillingClient",
    "BillingError",
    "CheckResult",
    "CheckoutSession",
    "Conflict",
    "Entitlement",
    "Forbidden",
    "Grant",
    "InvalidNotification",
    "InvalidSignature",
    "NotFound",
    "Notification",
    "OnUnavailable",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "__version__",
    "signature_header",
]
