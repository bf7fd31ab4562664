"""The effects of Stripe events, one module per object family. Each handler routes the event and
calls the owning app's services; importing this package registers them all (apps.py does).

Every handler is idempotent: applying an event twice, or an older event after a newer one, changes
nothing the second time. Those that need Stripe read it in their fetch step, before the event's
transaction (see apps/webhooks/registry.py).
"""

from apps.webhooks.handlers import catalog, checkout, invoices, payments, subscriptions

__all__ = ["catalog", "checkout", "invoices", "payments", "subscriptions"]
