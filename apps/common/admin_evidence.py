"""Base admins for rows an audit needs: money, what Stripe sent, who did what.

The permission methods return False for every user, superusers included: Django asks the ModelAdmin,
not the user's permissions, and a superuser holds every permission. Refusing delete also removes
the bulk "Delete selected" action, which Django lists only when delete is permitted.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

_M = TypeVar("_M", bound=Model)


class EvidenceAdmin(admin.ModelAdmin[_M]):
    """Rows that can be corrected through their own flows (revoke, status change) but never deleted."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(EvidenceAdmin[_M]):
    """Rows only the service writes: visible, never added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
