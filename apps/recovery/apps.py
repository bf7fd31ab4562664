from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    """Session sweeps, recovery attempts and notifications."""

    name = "apps.recovery"
    label = "recovery"
    verbose_name = "Recovery"
