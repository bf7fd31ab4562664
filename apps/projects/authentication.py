from __future__ import annotations

import structlog
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.projects.selectors import ApiClient, api_client_resolve
from apps.projects.services import api_key_touch

HEADER = "X-API-Key"


def client_authenticated(client: ApiClient) -> None:
    """What follows every successful authentication, on the DRF path and on the check's own path:
    the key's use is recorded (at most once per interval) and the logs name the app and project."""
    api_key_touch(key_id=client.key_id, prefix=client.key_prefix)
    structlog.contextvars.bind_contextvars(app_id=client.app_id, project_id=client.project_id)


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates `X-API-Key: bk_...` to an ApiClient (request.user and request.auth)."""

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiClient]:
        raw = request.headers.get(HEADER)
        if not raw:
            raise exceptions.NotAuthenticated(f"Missing {HEADER} header.")
        client = api_client_resolve(raw.strip())
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or inactive API key.")
        client_authenticated(client)
        return client, client

    def authenticate_header(self, request: Request) -> str:
        # Returning a value makes DRF answer 401 rather than 403 for missing credentials.
        return HEADER
