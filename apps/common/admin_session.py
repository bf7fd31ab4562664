"""Admin sessions end after ADMIN_SESSION_IDLE_SECONDS without an admin request; django-axes' backend.

The last admin request's time is kept in the session; a request that comes later than the limit
logs the user out first, so the admin answers it with its login page. Only admin paths count and
are checked: nothing else in the service uses a session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from axes.backends import AxesStandaloneBackend  # type: ignore[import-untyped]  # axes ships no types
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse

# Imported for its receivers: this module is loaded with the middleware, before the first login.
from apps.common import login_log  # noqa: F401
from apps.common.middleware import request_id_of

log = structlog.get_logger("billing.admin.session")

LAST_SEEN_KEY = "admin_last_seen"


class AdminIdleSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(f"/{settings.ADMIN_URL}") and request.user.is_authenticated:
            now = time.time()
            last_seen = request.session.get(LAST_SEEN_KEY)
            if isinstance(last_seen, int | float) and now - last_seen > settings.ADMIN_SESSION_IDLE_SECONDS:
                username = request.user.get_username()
                logout(request)  # flushes the session: the next login starts a new one
                log.info(
                    "admin.session_expired",
                    username=username,
                    idle_seconds=round(now - last_seen),
                    request_id=request_id_of(request),
                )
            else:
                request.session[LAST_SEEN_KEY] = now
        return self.get_response(request)


class AxesBackend(AxesStandaloneBackend):  # type: ignore[misc]  # an untyped base
    """django-axes' lockout check for logins over HTTP; an authenticate() without a request passes through.

    Axes raises on a missing request, yet only web logins can be counted per address: authenticate()
    from a shell or Django's test client (`Client.login`) has no request and nothing to lock out.
    The admin's login form always passes its request.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> AbstractBaseUser | None:
        if request is None:
            return None  # the next backend decides
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return]
