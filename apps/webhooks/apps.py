from importlib.util import find_spec

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """The signed Stripe webhook endpoint, the raw event ledger, processing and replays."""

    name = "apps.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from django.apps import apps
        from django.db.models.signals import post_delete, post_save
        from prometheus_client import REGISTRY

        from apps.webhooks.metrics import ledger_collector
        from apps.webhooks.routing import remembered_routes_forget

        # The webhook view remembers projects by slug for a few seconds (routing.routes_remembered):
        # listening to the projects app's saves, not touching its table.
        project_model = apps.get_model("projects", "Project")
        post_save.connect(remembered_routes_forget, sender=project_model, dispatch_uid="webhooks-routes-forget")
        post_delete.connect(remembered_routes_forget, sender=project_model, dispatch_uid="webhooks-routes-forget-del")

        # ready() can run more than once in tests; registering twice would raise.
        if ledger_collector not in getattr(REGISTRY, "_collector_to_names", {}):
            REGISTRY.register(ledger_collector)
        # The domain handlers register themselves with @handles when imported; import them here so
        # that every process (web, worker, beat, commands) knows them before the first event.
        if find_spec("apps.webhooks.handlers") is not None:
            __import__("apps.webhooks.handlers")
