"""What every view needs from the request: the calling client, its project, the validated body.

The permission classes that guard the views stay in apps/projects/permissions.py.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, serializers
from rest_framework.request import Request

from apps.common.strict import strict_json_types
from apps.projects.models import Project
from apps.projects.selectors import ApiClient


def client_of(request: Request) -> ApiClient:
    client = request.user
    if not isinstance(client, ApiClient):
        raise exceptions.NotAuthenticated()
    return client


def client_project(request: Request) -> Project:
    """The calling key's project (active: inactive projects fail authentication)."""
    return Project.objects.get(pk=client_of(request).project_id)


def validated_input(request: Request, serializer_class: type[serializers.Serializer[Any]]) -> dict[str, Any]:
    """The request body validated by `serializer_class` (a 400 naming the fields otherwise).

    Every value must have the JSON type the schema declares (strict_json_types): `0` is not a
    string and `"1"` is not an integer. `project_id` is dropped: ProjectMatches already required it
    to be the key's own project, so services take the project from the key, never from the body.
    """
    data = serializer_class(data=request.data)
    strict_json_types(data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    values.pop("project_id", None)
    return values
