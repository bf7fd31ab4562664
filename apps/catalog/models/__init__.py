from apps.catalog.models.configuration import AddOn, CustomField, Option, OptionGroup, SubscriptionPlan
from apps.catalog.models.products import FEATURE_CODE_PATTERN, CatalogProduct, PriceFeature
from apps.catalog.models.runs import CatalogSyncRun
from apps.catalog.models.stripe_mirror import StripePrice, StripeProduct

__all__ = [
    "FEATURE_CODE_PATTERN",
    "AddOn",
    "CatalogProduct",
    "CatalogSyncRun",
    "CustomField",
    "Option",
    "OptionGroup",
    "PriceFeature",
    "StripePrice",
    "StripeProduct",
    "SubscriptionPlan",
]
