"""Builders of Stripe objects in the pinned API version's shape (every default field present).

Written from Stripe's API reference; tests compare the top-level keys with Stripe's own
example objects and with the SDK's declared attributes.
"""
