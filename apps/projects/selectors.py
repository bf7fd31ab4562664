"""Reads for the projects app, above all resolving an API key on every request."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from apps.common.versioned_cache import VersionedCache
from apps.projects.keys import digests_match, key_digest, prefix_of
from apps.projects.models import ApiKey, App, Project

api_key_cache = VersionedCache("apikey", timeout=settings.API_KEY_CACHE_SECONDS)

# Cached for unknown prefixes too, so that a caller hammering with made-up keys does not reach the
# database on every request. A new key's creation invalidates its prefix.
_UNKNOWN = "unknown"


@dataclass(frozen=True)
class ApiClient:
    """The authenticated caller: one live key of an active app in an active project."""

    key_id: int
    key_prefix: str
    app_id: int
    app_name: str
    project_id: int
    project_slug: str
    scopes: frozenset[str]
    rate_limit: str

    # DRF and Django treat request.user as a user; a client is always authenticated.
    is_authenticated = True
    is_anonymous = False


@dataclass(frozen=True)
class _KeyRecord:
    """What the cache holds per key prefix: the digest to compare and the client it stands for."""

    digest: str
    usable: bool
    client: ApiClient


def _load_key(prefix: str) -> _KeyRecord | str:
    key = ApiKey.objects.select_related("app__project").filter(prefix=prefix).first()
    if key is None:
        return _UNKNOWN
    app = key.app
    return _KeyRecord(
        digest=key.digest,
        usable=key.revoked_at is None and app.active and app.project.active,
        client=ApiClient(
            key_id=key.pk,
            key_prefix=prefix,
            app_id=app.pk,
            app_name=app.name,
            project_id=app.project_id,
            project_slug=app.project.slug,
            scopes=frozenset(app.scopes),
            rate_limit=app.rate_limit,
        ),
    )


def api_client_resolve(raw_key: str) -> ApiClient | None:
    """The client a raw key stands for, or None for a malformed, unknown, revoked or inactive key."""
    prefix = prefix_of(raw_key)
    if prefix is None:
        return None
    record, generation = api_key_cache.get(prefix)
    if record is None:
        record = _load_key(prefix)
        api_key_cache.put(prefix, generation, record)
    if not isinstance(record, _KeyRecord) or not record.usable:
        return None
    if not digests_match(key_digest(raw_key), record.digest):
        return None
    _touch_last_used(record.client.key_id, prefix)
    return record.client


# Keyed by prefix too: row ids can be reused (a restored database, a test run), prefixes are random.
_touched_until: dict[tuple[int, str], float] = {}


def _touch_last_used(key_id: int, prefix: str) -> None:
    # A process asks the shared cache at most once per interval per key (no round trip on most
    # requests); cache.add then lets one request across all processes write. On a dead cache add()
    # answers falsy and nobody writes, which keeps the hot path free of DB writes.
    now = time.time()
    if _touched_until.get((key_id, prefix), 0.0) > now:
        return
    _touched_until[(key_id, prefix)] = now + settings.API_KEY_TOUCH_SECONDS
    if cache.add(f"apikey:touched:{key_id}", 1, timeout=settings.API_KEY_TOUCH_SECONDS):
        ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())


def project_list() -> QuerySet[Project]:
    return Project.objects.all()


def app_get_for_project(*, app_id: int, project_id: int) -> App | None:
    return App.objects.select_related("project").filter(pk=app_id, project_id=project_id).first()
