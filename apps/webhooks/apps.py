from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """The signed Stripe webhook endpoint, the raw event ledger, processing and replays."""

    name = "apps.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"
