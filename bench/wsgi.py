"""The service's WSGI application, plus `/bench/nomw/<path>`: the same path served with no middleware.

Both run in the same gunicorn workers, so `/health` against `/bench/nomw/health` is the cost of the
middleware stack itself (same view, same Django request cycle, same server, same run).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

NO_MIDDLEWARE_PREFIX = "/bench/nomw"


class NoMiddlewareHandler(WSGIHandler):
    """Django's WSGI handler with an empty middleware chain (URL resolution, view, signals only)."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]


_service = get_wsgi_application()
_bare = NoMiddlewareHandler()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path.startswith(NO_MIDDLEWARE_PREFIX + "/"):
        environ["PATH_INFO"] = path[len(NO_MIDDLEWARE_PREFIX) :]
        return _bare(environ, start_response)
    return _service(environ, start_response)
