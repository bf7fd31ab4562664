"""Offline stand-in for the Stripe API (see docs/sandbox.md).

A separate aiohttp process; the billing service talks to it exactly as to Stripe,
through the official SDK pointed at it. Nothing under ``apps/`` imports this package.
"""

# The API version the sandbox serves, pinned to the one the installed SDK speaks.
API_VERSION = "2026-08-26.dahlia"
# The one secret key the sandbox accepts unless started with another (``--api-key``); any other
# key gets 401, as at Stripe. dj-stripe accepts only keys of 24+ characters after the prefix.
DEFAULT_API_KEY = "sk_test_sandbox0000000000000000000000"
