from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    """Grants, the entitlement projection, the check API and its cache."""

    name = "apps.entitlements"
    label = "entitlements"
    verbose_name = "Entitlements"
