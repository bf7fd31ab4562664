"""Who may call what: scopes per view, and project scoping for every id a request names.

Rules (API.md): a `project_id` in the path, the query or the body that is not the key's project is a
403 "Project ID does not match"; an object of another project is a 404, as if it did not exist.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.common.api import client_of
from apps.projects.selectors import ApiClient

if TYPE_CHECKING:
    # Only for annotations: DRF's views import these classes through its settings (a cycle).
    from rest_framework.views import APIView

PROJECT_MISMATCH = "Project ID does not match"
_PROJECT_ID = re.compile(r"[0-9]{1,18}")


def parse_project_id(value: Any) -> int:
    """An integer project id from a path, query or JSON value; a 400 naming the field otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # ASCII digits only: str.isdigit() also takes "²", which int() then refuses (a 500).
    if isinstance(value, str) and _PROJECT_ID.fullmatch(value.strip()):
        return int(value.strip())
    raise exceptions.ValidationError({"project_id": ["A valid integer is required."]})


def ensure_project(request: Request, project_id: Any) -> int:
    number = parse_project_id(project_id)
    if number != client_of(request).project_id:
        raise exceptions.PermissionDenied(PROJECT_MISMATCH)
    return number


class IsApiClient(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.user, ApiClient)


class HasScopes(BasePermission):
    """Requires every scope in the view's `required_scopes`."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        required: tuple[str, ...] = getattr(view, "required_scopes", ())
        missing = missing_scopes(client_of(request), required)
        if missing:
            raise exceptions.PermissionDenied(f"This API key lacks the scope(s): {', '.join(missing)}.")
        return True


def missing_scopes(client: ApiClient, required: tuple[str, ...]) -> list[str]:
    """The scopes of `required` the client's key lacks (HasScopes; the entitlement check's own path)."""
    return sorted(set(required) - client.scopes)


class ProjectMatches(BasePermission):
    """Checks every `project_id` the request names against the key's project."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        candidates: list[Any] = []
        if "project_id" in view.kwargs:
            candidates.append(view.kwargs["project_id"])
        if "project_id" in request.query_params:
            candidates.append(request.query_params["project_id"])
        body = request.data if request.method not in ("GET", "HEAD", "OPTIONS") else None
        if isinstance(body, dict) and "project_id" in body:
            candidates.append(body["project_id"])
        for candidate in candidates:
            ensure_project(request, candidate)
        return True


CLIENT_PERMISSIONS = [IsApiClient, HasScopes, ProjectMatches]
