from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Small shared helpers: errors, request ids, health probes, the scheduler heartbeat."""

    name = "apps.common"
    label = "common"
    verbose_name = "Common"

    def ready(self) -> None:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured
        from django.utils.module_loading import import_string
        from prometheus_client import REGISTRY

        # A typo in the resolver's path must stop the process at start, not fail the first checkout.
        try:
            import_string(settings.STRIPE_CREDENTIALS_RESOLVER)
        except ImportError as exc:
            raise ImproperlyConfigured(f"STRIPE_CREDENTIALS_RESOLVER: {exc}") from None

        from apps.common.metrics import scheduler_collector

        # ready() can run more than once in tests; registering twice would raise.
        if scheduler_collector not in getattr(REGISTRY, "_collector_to_names", {}):
            REGISTRY.register(scheduler_collector)
