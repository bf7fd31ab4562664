from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    """Stripe customers per (project, user), checkout and portal sessions, invoices."""

    name = "apps.checkout"
    label = "checkout"
    verbose_name = "Checkout"
