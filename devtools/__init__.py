"""Development tools: `make run`'s process supervisor (devstack) and the way to the Stripe sandbox.

A Django app installed only outside production (billing_service/settings.py); the production image
ships neither this package nor stripe_sandbox/ (.dockerignore). apps/ never import it, except the one
dev-only flag `smoke_checkout --in-process`, lazily.
"""
