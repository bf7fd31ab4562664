"""Writes to the catalog that are not product configuration."""

from __future__ import annotations

from django.db import transaction
from rest_framework.exceptions import NotFound, ValidationError

from apps.catalog.models import PriceFeature
from apps.catalog.selectors import PriceView, project_price
from apps.projects.models import Project


@transaction.atomic
def price_feature_set(
    *, project: Project, price_id: str, feature_code: str, purchase_duration_days: int | None
) -> PriceView:
    price = project_price(project_id=project.pk, price_id=price_id)
    if price is None:
        raise NotFound(f"Price {price_id} is not in this project's catalog.")
    if purchase_duration_days is not None and price["recurring"] is not None:
        raise ValidationError(
            {
                "purchase_duration_days": [
                    "Only one-time prices have a purchase duration; a subscription lasts its period."
                ]
            }
        )
    feature, _ = PriceFeature.objects.select_for_update().get_or_create(
        project=project, stripe_price_id=price_id, defaults={"feature_code": feature_code}
    )
    feature.feature_code = feature_code
    feature.purchase_duration_days = purchase_duration_days
    feature.full_clean()
    feature.save()
    updated = project_price(project_id=project.pk, price_id=price_id)
    assert updated is not None
    return updated
