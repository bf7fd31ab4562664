"""Shared fixtures: the real database, the configured cache, and two tenants.

Personas: alice's app lives in project "alpha", bob's in "bravo", so every test can ask whether one
tenant's key reaches the other's data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import stripe
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.projects.models import ALL_SCOPES, App, Project
from apps.projects.services import app_create, project_create
from billing_service.celery import app as celery_app
from stripe_sandbox.testing import SandboxProcess


def pytest_configure(config: pytest.Config) -> None:
    # CI must test against the real services; a missing URL there is a failure, not a fallback.
    if _in_ci():
        missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
        if missing:
            pytest.exit(f"CI requires {', '.join(missing)}: tests must run on PostgreSQL and Redis", returncode=2)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _requires_postgres(request: pytest.FixtureRequest) -> None:
    """Tests of row locks and concurrent connections need PostgreSQL: skipped on a bare SQLite run,
    a failure in CI, which always has PostgreSQL."""
    if request.node.get_closest_marker("requires_postgres") is None:
        return
    from django.db import connection

    if connection.vendor != "postgresql":
        if _in_ci():
            pytest.fail("this test needs PostgreSQL and CI must provide it (DATABASE_URL)")
        pytest.skip("needs PostgreSQL: set DATABASE_URL to run it")


@pytest.fixture(scope="session", autouse=True)
def _services_reachable(django_db_setup: None) -> None:
    """A configured Redis must answer: with IGNORE_EXCEPTIONS a dead one would pass tests silently."""
    if settings.REDIS_URL:
        from django_redis import get_redis_connection

        try:
            get_redis_connection("default").ping()
        except Exception as exc:
            pytest.exit(f"REDIS_URL is set but Redis does not answer: {exc}", returncode=2)


@pytest.fixture(scope="session", autouse=True)
def _celery_eager() -> None:
    # Unit tests run tasks inline; end-to-end tests start a real worker.
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    _wipe_cache()
    yield
    _wipe_cache()


def _wipe_cache() -> None:
    if settings.REDIS_URL:
        # Only our prefixed keys: REDIS_URL may point at a database others use too.
        cache.delete_pattern("*")  # type: ignore[attr-defined]
    else:
        cache.clear()


@contextmanager
def committed() -> Iterator[None]:
    """Runs the on_commit callbacks of the block, as a real commit would.

    Tests run inside a transaction that is rolled back, so without this, cache invalidations and
    task enqueues registered with transaction.on_commit would never run.
    """
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        yield


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[SandboxProcess]:
    """One offline Stripe sandbox process for the session (tests/sandbox and the end-to-end tests)."""
    with SandboxProcess.start(retry_time_scale=0.001, delivery_timeout=1.0) as sandbox:
        yield sandbox


@pytest.fixture
def stripe_sandbox(sandbox_process: SandboxProcess, settings: Any) -> SandboxProcess:
    """A reset sandbox that the service's Stripe gateway talks to, as STRIPE_API_HOST would make it."""
    sandbox_process.reset()
    settings.STRIPE_API_HOST = sandbox_process.base_url
    settings.STRIPE_SECRET_KEY = sandbox_process.api_key
    settings.STRIPE_RETRY_BUDGET_SECONDS = 5.0
    return sandbox_process


@pytest.fixture
def stripe_client(stripe_sandbox: SandboxProcess) -> stripe.StripeClient:
    """The official SDK pointed at the sandbox, for tests to look at what Stripe holds."""
    return stripe.StripeClient(
        stripe_sandbox.api_key, base_addresses={"api": stripe_sandbox.base_url}, max_network_retries=0
    )


@dataclass
class Tenant:
    project: Project
    app: App
    key: str

    def client(self) -> APIClient:
        api = APIClient()
        api.credentials(HTTP_X_API_KEY=self.key)
        return api


def make_tenant(slug: str, *, scopes: list[str] | None = None, app_name: str = "app") -> Tenant:
    project = project_create(name=slug.title(), slug=slug, allowed_redirect_prefixes=[f"https://{slug}.example/"])
    app, key = app_create(project=project, name=app_name, scopes=sorted(ALL_SCOPES) if scopes is None else scopes)
    return Tenant(project=project, app=app, key=key)


@pytest.fixture
def alice(db: None) -> Tenant:
    return make_tenant("alpha")


@pytest.fixture
def bob(db: None) -> Tenant:
    return make_tenant("bravo")


@pytest.fixture
def labs(alice: Tenant) -> Tenant:
    """alice's project with the feature code `labs` declared (the API guide's grant example)."""
    alice.project.feature_codes = ["labs"]
    alice.project.save(update_fields=["feature_codes"])
    return alice
