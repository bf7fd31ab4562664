"""Writes for projects, apps and API keys. Every change that affects key resolution invalidates
the cached entries after commit, so the next request sees it."""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.projects.keys import NewKey, generate_key
from apps.projects.models import ApiKey, App, Project
from apps.projects.selectors import api_key_cache


def _invalidate_prefixes_on_commit(prefixes: Iterable[str]) -> None:
    prefixes = list(prefixes)

    def invalidate() -> None:
        for prefix in prefixes:
            api_key_cache.invalidate(prefix)

    transaction.on_commit(invalidate)


@transaction.atomic
def project_create(*, name: str, slug: str, allowed_redirect_prefixes: list[str] | None = None) -> Project:
    project = Project(name=name, slug=slug, allowed_redirect_prefixes=allowed_redirect_prefixes or [])
    project.full_clean()
    project.save()
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    name: str | None = None,
    allowed_redirect_prefixes: list[str] | None = None,
    active: bool | None = None,
) -> Project:
    if name is not None:
        project.name = name
    if allowed_redirect_prefixes is not None:
        project.allowed_redirect_prefixes = allowed_redirect_prefixes
    if active is not None:
        project.active = active
    project.full_clean()
    project.save()
    _invalidate_prefixes_on_commit(ApiKey.objects.filter(app__project=project).values_list("prefix", flat=True))
    return project


@transaction.atomic
def app_create(*, project: Project, name: str, scopes: list[str], created_by: str = "") -> tuple[App, str]:
    """Creates the app and its first key. The raw key is returned here once and never again."""
    app = App(project=project, name=name, scopes=sorted(set(scopes)))
    app.full_clean()
    app.save()
    _, raw = api_key_create(app=app, label="initial", created_by=created_by)
    return app, raw


@transaction.atomic
def app_update(
    *,
    app: App,
    name: str | None = None,
    scopes: list[str] | None = None,
    active: bool | None = None,
    rate_limit: str | None = None,
) -> App:
    if name is not None:
        app.name = name
    if scopes is not None:
        app.scopes = sorted(set(scopes))
    if active is not None:
        app.active = active
    if rate_limit is not None:
        app.rate_limit = rate_limit
    app.full_clean()
    app.save()
    _invalidate_prefixes_on_commit(app.keys.values_list("prefix", flat=True))
    return app


def _store_key(*, app: App, new_key: NewKey, label: str, created_by: str) -> ApiKey:
    key = ApiKey.objects.create(
        app=app, label=label, prefix=new_key.prefix, digest=new_key.digest, created_by=created_by
    )
    # The prefix may sit in the cache as "unknown" from an earlier probe.
    _invalidate_prefixes_on_commit([new_key.prefix])
    return key


@transaction.atomic
def api_key_create(*, app: App, label: str = "", created_by: str = "") -> tuple[ApiKey, str]:
    new_key = generate_key()
    return _store_key(app=app, new_key=new_key, label=label, created_by=created_by), new_key.raw


@transaction.atomic
def api_key_install(*, app: App, new_key: NewKey, label: str, created_by: str = "") -> ApiKey:
    """Stores a key whose raw value the caller chose (the local demo key). Idempotent."""
    existing = ApiKey.objects.filter(prefix=new_key.prefix).first()
    if existing is not None:
        if existing.app_id != app.pk or existing.digest != new_key.digest:
            raise ValueError(f"a different key with prefix {new_key.prefix} already exists")
        return existing
    return _store_key(app=app, new_key=new_key, label=label, created_by=created_by)


@transaction.atomic
def api_key_revoke(*, key: ApiKey) -> ApiKey:
    locked = ApiKey.objects.select_for_update().get(pk=key.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
    _invalidate_prefixes_on_commit([locked.prefix])
    return locked


@transaction.atomic
def api_key_rotate(*, app: App, revoke_others: bool = False, created_by: str = "") -> tuple[ApiKey, str, list[str]]:
    """Issues a new key. The old keys stay live (so callers can switch over) unless revoke_others."""
    key, raw = api_key_create(app=app, label="rotated", created_by=created_by)
    revoked: list[str] = []
    if revoke_others:
        for old in app.keys.select_for_update().filter(revoked_at__isnull=True).exclude(pk=key.pk):
            api_key_revoke(key=old)
            revoked.append(old.prefix)
    return key, raw, revoked


# Keyed by prefix too: row ids can be reused (a restored database, a test run), prefixes are random.
_touched_until: dict[tuple[int, str], float] = {}


def api_key_touch(*, key_id: int, prefix: str) -> None:
    """Records that a key was used: last_used_at, written at most once per API_KEY_TOUCH_SECONDS.

    Runs on every authenticated request, so it must stay cheap: a process asks the shared cache at
    most once per interval per key (no round trip on most requests); cache.add then lets one request
    across all processes write. On a dead cache add() answers falsy and nobody writes, which keeps
    the hot path free of DB writes.
    """
    now = time.time()
    if _touched_until.get((key_id, prefix), 0.0) > now:
        return
    _touched_until[(key_id, prefix)] = now + settings.API_KEY_TOUCH_SECONDS
    if cache.add(f"apikey:touched:{key_id}", 1, timeout=settings.API_KEY_TOUCH_SECONDS):
        ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
