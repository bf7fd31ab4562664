"""``/v1`` handlers, one module per family of resources; importing registers the routes."""

from . import catalog, checkout, customers, payments, platform, subscriptions

__all__ = ["catalog", "checkout", "customers", "payments", "platform", "subscriptions"]
