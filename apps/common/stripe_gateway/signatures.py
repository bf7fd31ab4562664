"""Stripe-Signature checked by the SDK (`stripe.WebhookSignature`), so only the gateway imports `stripe`.

apps/webhooks/signature.py parses the header, checks the timestamp both ways and names what is wrong;
this module only answers whether one of the endpoint's secrets signed the payload.
"""

from __future__ import annotations

from collections.abc import Sequence

import stripe


def signed_by_any(payload: str, header: str, *, secrets: Sequence[str]) -> bool:
    """True when the SDK verifies `header` over `payload` under at least one of `secrets`.

    Several secrets are valid while one is rotated; the SDK takes one at a time. Its own timestamp
    check is off (`tolerance=None`): it looks only into the past, and the caller checks both ways.
    """
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
        except stripe.SignatureVerificationError:
            continue
        return True
    return False
