"""The audit log's admin (read-only), and repairs to third-party admin pages we show finance and
support staff.

dj-stripe 2.11 keeps most Stripe fields in its `stripe_data` JSON column, but some of its admins
still search model fields that no longer exist (a customer's email, an invoice's number), so a
search on those pages answered 500. Each such search field is pointed at the same key of
`stripe_data`. This module is imported by admin autodiscovery after dj-stripe's admin (djstripe
comes first in INSTALLED_APPS), so the admins it repairs are already registered.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model
from django.db.models.constants import LOOKUP_SEP

from apps.common.admin_evidence import ReadOnlyAdmin
from apps.common.models import AuditLog


def _resolves(model: type[Model], path: str) -> bool:
    first = path.lstrip("^=@").split(LOOKUP_SEP, 1)[0]
    try:
        model._meta.get_field(first)
    except FieldDoesNotExist:
        return False
    return True


def djstripe_search_fields_repair() -> list[str]:
    """Rewrites dj-stripe search fields that name no field; returns what it rewrote, for the tests."""
    rewritten: list[str] = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "djstripe" or not _has_stripe_data(model):
            continue
        fields = []
        for path in model_admin.search_fields:
            if _resolves(model, path):
                fields.append(path)
            else:
                bare = path.lstrip("^=@")  # keep a search operator prefix in front
                fields.append(f"{path[: len(path) - len(bare)]}stripe_data{LOOKUP_SEP}{bare}")
                rewritten.append(f"{model._meta.label_lower}.{path}")
        # On the class (one instance per class, registered once): search_fields is a class attribute.
        type(model_admin).search_fields = tuple(fields)
    return rewritten


def _has_stripe_data(model: type[Model]) -> bool:
    return _resolves(model, "stripe_data")


djstripe_search_fields_repair()


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin[AuditLog]):
    # Written only by the services that make the changes it records (grants, revokes, replays).
    list_display = ("occurred_at", "actor", "action", "target", "project", "reason")
    list_filter = ("action", "project")
    search_fields = ("actor", "target", "reason")
    list_select_related = ("project",)
    date_hierarchy = "occurred_at"
