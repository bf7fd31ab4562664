from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """Stripe products and prices mapped to feature codes, and product configuration."""

    name = "apps.catalog"
    label = "catalog"
    verbose_name = "Catalog"
