"""The Idempotency-Key contract of POST endpoints that create things (API.md).

Same key and same request: the first response is replayed (with `Idempotent-Replayed: true`).
Same key, different request: 409. Same key while the first is still running: 409.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from apps.common.exceptions import Conflict
from apps.common.models import IdempotencyRecord

HEADER = "Idempotency-Key"
# Printable ASCII: a header value is Latin-1 on the wire, and the schema declares this same pattern.
KEY_PATTERN = r"^[\x20-\x7E]{1,255}$"
_KEY = re.compile(KEY_PATTERN)
RETENTION = timedelta(hours=24)
# Set on a decorated handler, so that the OpenAPI schema can declare the header and the 409.
_MARKER = "honours_idempotency_key"
View = TypeVar("View")
Handler = Callable[..., Response]


def _request_hash(request: Request, method_path: str) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method_path}\n{body}".encode()).hexdigest()


def idempotent(handler: Handler) -> Handler:
    """Decorates an APIView method; the view must be authenticated (the key is scoped per project)."""

    @wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not _KEY.fullmatch(key):
            raise exceptions.ValidationError({HEADER: ["Must be 1 to 255 printable ASCII characters."]})
        project_id = int(request.user.project_id)  # type: ignore[union-attr]
        method_path = f"{request.method} {request.path}"
        request_hash = _request_hash(request, method_path)
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    project_id=project_id, key=key, method_path=method_path, request_hash=request_hash
                )
        except IntegrityError:
            return _replay(project_id=project_id, key=key, method_path=method_path, request_hash=request_hash)
        try:
            response = handler(view, request, *args, **kwargs)
        except BaseException:
            record.delete()
            raise
        if response.status_code >= 500:
            record.delete()
        else:
            record.status_code = response.status_code
            record.response_body = response.data
            record.save(update_fields=["status_code", "response_body"])
        return response

    wrapper.__dict__[_MARKER] = True
    return wrapper


def honours_idempotency_key(handler: Any) -> bool:
    """Whether a view method (bound or not) is decorated with `idempotent`."""
    return bool(getattr(handler, _MARKER, False))


def _replay(*, project_id: int, key: str, method_path: str, request_hash: str) -> Response:
    existing = IdempotencyRecord.objects.filter(project_id=project_id, key=key).first()
    if existing is None:
        raise Conflict("A request with this Idempotency-Key just failed; retry it.")
    if existing.method_path != method_path or existing.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was already used with a different request.")
    if existing.status_code is None:
        raise Conflict("A request with this Idempotency-Key is still in progress; retry shortly.")
    return Response(existing.response_body, status=existing.status_code, headers={"Idempotent-Replayed": "true"})


def idempotency_records_purge() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - RETENTION).delete()
    return deleted
