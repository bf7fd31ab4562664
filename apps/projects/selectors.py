"""Reads for the projects app, above all resolving an API key on every request."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

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
    """The client a raw key stands for, or None for a malformed, unknown, revoked or inactive key.

    A read only: the authentication records the key's use (services.api_key_touch).
    """
    prefix = prefix_of(raw_key)
    if prefix is None:
        return None
    record, generation = api_key_cache.get(prefix)
    if record is None:
        record = _load_key(prefix)
        api_key_cache.put(prefix, generation, record)
    return api_client_of(raw_key, record)


def api_client_of(raw_key: str, record: object) -> ApiClient | None:
    """The client a cached key record stands for, when `raw_key` is that key and it is usable.

    The one place that decides whether a key authenticates: api_client_resolve and the entitlement
    check's one-round-trip path (apps/entitlements/api_check.py) both go through it.
    """
    if not isinstance(record, _KeyRecord) or not record.usable:
        return None
    if not digests_match(key_digest(raw_key), record.digest):
        return None
    return record.client


def project_list() -> QuerySet[Project]:
    return Project.objects.all()


def app_get_for_project(*, app_id: int, project_id: int) -> App | None:
    return App.objects.select_related("project").filter(pk=app_id, project_id=project_id).first()


def project_get_by_slug(*, slug: str) -> Project | None:
    return Project.objects.filter(slug=slug).first()
