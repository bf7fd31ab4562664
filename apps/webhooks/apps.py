from importlib.util import find_spec

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """The signed Stripe webhook endpoint, the raw event ledger, processing and replays."""

    name = "apps.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.webhooks.metrics import ledger_collector

        # ready() can run more than once in tests; registering twice would raise.
        if ledger_collector not in getattr(REGISTRY, "_collector_to_names", {}):
            REGISTRY.register(ledger_collector)
        # The domain handlers register themselves with @handles when imported; import them here so
        # that every process (web, worker, beat, commands) knows them before the first event.
        if find_spec("apps.webhooks.handlers") is not None:
            __import__("apps.webhooks.handlers")
