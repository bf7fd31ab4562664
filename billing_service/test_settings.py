"""The settings pytest and mypy load: the real settings in the `test` environment."""

import os

os.environ.setdefault("DJANGO_ENV", "test")

# `pytest -n` (xdist): each worker wipes the cache around every test, and a shared Redis database
# would let one worker's wipe erase another's throttle counters mid-test. A key prefix per worker
# keeps them apart; set in the environment, so the Celery workers the e2e tests start get it too.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _xdist_worker:
    _prefix = os.environ.get("CACHE_KEY_PREFIX") or "billing"
    if not _prefix.endswith(f"-{_xdist_worker}"):
        os.environ["CACHE_KEY_PREFIX"] = f"{_prefix}-{_xdist_worker}"

from billing_service.settings import *  # noqa: E402, F403 - after the environment above is set

# `pytest -n` (xdist) gives each worker a test database of its own by suffixing TEST NAME, and tells
# SQLite apart by Django's engine name only: under django-prometheus's wrapper it would suffix the
# file path into a name SQLite cannot open. Naming the in-memory database (Django's default for SQLite
# tests anyway) makes it skip the suffix: each worker process has its own memory.
if DATABASES["default"]["ENGINE"].endswith(".sqlite3"):  # noqa: F405
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", ":memory:")  # noqa: F405
