"""The OpenAPI schema view, serialised.

drf-spectacular builds the schema on every request and, while it does, patches module-level
settings and fills shared registries: two builds at once in one threaded worker can interleave and
answer a 500 (seen with two simultaneous first requests). The schema is read rarely (the docs page,
client generators), so one build at a time per process costs nothing that matters.
"""

from __future__ import annotations

import threading
from typing import Any

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response

_build_lock = threading.Lock()


class SerialisedSchemaView(SpectacularAPIView):
    @extend_schema(exclude=True)  # the schema does not describe itself (SERVE_INCLUDE_SCHEMA is off)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with _build_lock:
            return super().get(request, *args, **kwargs)  # type: ignore[no-any-return,no-untyped-call]
