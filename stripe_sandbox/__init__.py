"""Offline stand-in for the Stripe API (see docs/sandbox.md).

A separate aiohttp process; the billing service talks to it exactly as to Stripe,
through the official SDK pointed at it. Nothing under ``apps/`` imports this package.
"""

# The API version the sandbox serves, pinned to the one the installed SDK speaks.
API_VERSION = "2026-08-26.dahlia"
