from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Small shared helpers: errors, request ids, health probes, the scheduler heartbeat."""

    name = "apps.common"
    label = "common"
    verbose_name = "Common"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from apps.common.metrics import scheduler_collector

        # ready() can run more than once in tests; registering twice would raise.
        if scheduler_collector not in getattr(REGISTRY, "_collector_to_names", {}):
            REGISTRY.register(scheduler_collector)
