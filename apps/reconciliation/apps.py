from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    """Daily comparison against Stripe: runs, discrepancies, resolutions."""

    name = "apps.reconciliation"
    label = "reconciliation"
    verbose_name = "Reconciliation"
