"""Manual grants and revokes by support staff; each one is audited with the state before and after."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import CatalogProduct, PriceFeature
from apps.common.audit import audit_record
from apps.entitlements.models import Grant
from apps.entitlements.projection import entitlements_recompute
from apps.projects.models import Project


def known_feature_codes(project: Project) -> set[str]:
    """Codes mapped to the project's prices or products (a paid invoice line grants a product's), and
    those declared on the project."""
    mapped = set(PriceFeature.objects.filter(project=project).values_list("feature_code", flat=True))
    products = set(
        CatalogProduct.objects.filter(project=project).exclude(feature_code="").values_list("feature_code", flat=True)
    )
    return mapped | products | {str(code) for code in project.feature_codes}


def _grant_state(grant: Grant) -> dict[str, Any]:
    return {
        "grant_id": grant.pk,
        "user_id": grant.user_id,
        "feature_code": grant.feature_code,
        "valid_from": grant.valid_from.isoformat(),
        "valid_to": grant.valid_to.isoformat() if grant.valid_to else None,
        "revoked_at": grant.revoked_at.isoformat() if grant.revoked_at else None,
    }


def grant_create(
    *,
    project: Project,
    user_id: str,
    feature_code: str,
    granted_by: str,
    reason: str,
    valid_from: dt.datetime | None = None,
    valid_to: dt.datetime | None = None,
) -> Grant:
    if feature_code not in known_feature_codes(project):
        raise ValidationError(
            {
                "feature_code": [
                    f"Unknown feature code {feature_code!r} for this project: map it to a price or declare it."
                ]
            }
        )
    now = timezone.now()
    start = valid_from or now
    if valid_to is not None and valid_to <= now:
        # Such a grant would never be active: say so, rather than store one that entitles to nothing.
        raise ValidationError(
            {
                "valid_to": [
                    f"{valid_to.isoformat().replace('+00:00', 'Z')} is already past: a grant must end in the future."
                ]
            }
        )
    if valid_to is not None and valid_to <= start:
        raise ValidationError({"valid_to": ["Must be after valid_from."]})
    with transaction.atomic():
        grant = Grant.objects.create(
            project=project,
            user_id=user_id,
            feature_code=feature_code,
            granted_by=granted_by,
            reason=reason,
            valid_from=start,
            valid_to=valid_to,
        )
        audit_record(
            actor=granted_by,
            action="grant.create",
            target=f"grant #{grant.pk}",
            reason=reason,
            project=project,
            before=None,
            after=_grant_state(grant),
        )
        entitlements_recompute(project=project, user_id=user_id)
    return grant


def grants_revoke(
    *, project: Project, user_id: str, feature_code: str, revoked_by: str, reason: str, grant_id: int | None = None
) -> int:
    """Ends every grant of the feature that has not ended yet (or one grant); returns how many."""
    now = timezone.now()
    with transaction.atomic():
        grants = Grant.objects.select_for_update().filter(
            project=project, user_id=user_id, feature_code=feature_code, revoked_at__isnull=True
        )
        if grant_id is not None:
            grants = grants.filter(pk=grant_id)
        ended = 0
        for grant in grants:
            if grant.valid_to is not None and grant.valid_to <= now:
                continue  # already over; revoking it would rewrite history
            before = _grant_state(grant)
            grant.revoked_at = now
            grant.revoked_by = revoked_by
            grant.revoke_reason = reason
            grant.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
            audit_record(
                actor=revoked_by,
                action="grant.revoke",
                target=f"grant #{grant.pk}",
                reason=reason,
                project=project,
                before=before,
                after=_grant_state(grant),
            )
            ended += 1
        if ended:
            entitlements_recompute(project=project, user_id=user_id)
    return ended
