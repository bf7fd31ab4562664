"""A log line for every admin login, failed login and lockout, with the request's id.

Connected when apps/common/admin_session.py is imported (the middleware list loads it before any
request is served). The password never reaches the log: Django hands failed-login receivers
credentials with it masked, and only the username is kept.
"""

from __future__ import annotations

from typing import Any

import structlog
from axes.signals import user_locked_out  # type: ignore[import-untyped]  # axes ships no types
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from apps.common.middleware import request_id_of

log = structlog.get_logger("billing.admin.login")


def _where(request: HttpRequest | None) -> dict[str, str]:
    if request is None:
        return {"request_id": "", "path": "", "remote_addr": ""}
    return {
        "request_id": request_id_of(request),
        "path": request.path,
        "remote_addr": str(request.META.get("REMOTE_ADDR", "")),
    }


@receiver(user_logged_in, dispatch_uid="billing.login_log.logged_in")
def login_logged(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    log.info("admin.login", username=user.get_username(), **_where(request))


@receiver(user_login_failed, dispatch_uid="billing.login_log.failed")
def login_failed_logged(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    locked = bool(getattr(request, "axes_locked_out", False))
    log.warning(
        "admin.login_failed", username=str(credentials.get("username", "")), locked_out=locked, **_where(request)
    )


@receiver(user_locked_out, dispatch_uid="billing.login_log.locked_out")
def lockout_logged(sender: Any, request: HttpRequest | None, username: str | None = None, **kwargs: Any) -> None:
    log.warning("admin.lockout", username=username or "", **_where(request))
