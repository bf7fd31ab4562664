from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """Stripe products and prices mapped to feature codes, and product configuration."""

    name = "apps.catalog"
    label = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        # After the admin's autodiscovery (django.contrib.admin's ready runs first): dj-stripe's
        # admin entries are replaced by the two mirrors the catalog keeps (admin_mirror.py).
        from apps.catalog.admin_mirror import tidy_stripe_admin

        tidy_stripe_admin()
