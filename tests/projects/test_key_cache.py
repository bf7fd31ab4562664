"""Key resolution on a warm cache touches no database, and a racing fill cannot resurrect a key."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.projects.models import ApiKey
from apps.projects.selectors import _load_key, api_client_resolve, api_key_cache
from apps.projects.services import api_key_revoke
from tests.conftest import Tenant, committed

pytestmark = pytest.mark.django_db


def test_a_warm_cache_resolves_a_key_without_touching_the_database(alice: Tenant) -> None:
    assert api_client_resolve(alice.key) is not None  # cold: reads the row
    with CaptureQueriesContext(connection) as queries:
        client = api_client_resolve(alice.key)
    assert client is not None and client.project_id == alice.project.pk
    assert len(queries) == 0


def test_unknown_prefixes_are_cached_too(alice: Tenant) -> None:
    unknown = "bk_zzzzzzzz_" + "a" * 43
    assert api_client_resolve(unknown) is None
    with CaptureQueriesContext(connection) as queries:
        assert api_client_resolve(unknown) is None
    assert len(queries) == 0


def test_a_fill_that_raced_a_revoke_cannot_bring_the_key_back(alice: Tenant) -> None:
    prefix = alice.key.split("_")[1]
    # A reader misses and reads the row while the key is still live...
    stale_record, generation = api_key_cache.get(prefix)
    assert stale_record is None
    stale_record = _load_key(prefix)
    # ...the revoke commits and invalidates...
    with committed():
        api_key_revoke(key=ApiKey.objects.get(prefix=prefix))
    # ...and only then does the reader fill the cache with what it read.
    api_key_cache.put(prefix, generation, stale_record)
    assert api_client_resolve(alice.key) is None


def test_a_new_key_is_not_hidden_by_a_cached_unknown_for_its_prefix(alice: Tenant) -> None:
    from apps.projects.keys import generate_key
    from apps.projects.services import api_key_install

    new = generate_key()
    assert api_client_resolve(new.raw) is None  # caches "unknown" for the prefix
    with committed():
        api_key_install(app=alice.app, new_key=new, label="late")
    assert api_client_resolve(new.raw) is not None
