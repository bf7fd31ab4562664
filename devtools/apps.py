from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Management commands for development only (`make run`); no models."""

    name = "devtools"
    verbose_name = "Development tools"
