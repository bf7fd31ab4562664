"""Long runs through the API with a real Celery worker: the POST answers 202, the worker does the
work, and polling the run's URL shows it finish. Then a worker killed in the middle of a run: the
run is left `running`, and the stale-run sweep marks it failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import stripe
from celery import Celery
from django.db import connection
from django.utils import timezone

from apps.catalog.models import CatalogProduct
from apps.catalog.tasks import catalog_sync_run_task
from apps.common.runs import stale_runs_sweep
from apps.webhooks.models import ProcessorEvent, ReplayRun
from apps.webhooks.tasks import replay_run_task
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant
from tests.e2e.conftest import eventually
from tests.factories import ProcessorEventFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]

ROOT = Path(__file__).resolve().parents[2]
# The suite's Redis (its own database per run of the suite) and a queue of this test's own, so that
# no other worker on that Redis takes these tasks.
BROKER = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9"


@pytest.fixture
def queue() -> str:
    return f"e2e-runs-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def to_worker(queue: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The run tasks go over the broker to the worker instead of running eagerly in this process.
    Only the transport changes: the view, its on_commit enqueue and the task are the real ones."""
    sender = Celery(broker=BROKER, set_as_current=False)
    for task in (replay_run_task, catalog_sync_run_task):
        name = task.name

        def send(run_id: int, *, _name: str = name) -> Any:
            return sender.send_task(_name, args=[run_id], queue=queue)

        monkeypatch.setattr(task, "delay", send)
    yield
    sender.close()


def _worker(sandbox: SandboxProcess, queue: str) -> subprocess.Popen[bytes]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_service.settings",
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "STRIPE_API_HOST": sandbox.base_url,
        "STRIPE_SECRET_KEY": sandbox.api_key,
        "LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "celery", "-A", "billing_service", "worker", "--pool", "solo", "-l", "WARNING"]
    argv += ["-Q", queue]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=5)


def _ledger_event(tenant: Tenant, event_id: str, created: datetime) -> ProcessorEvent:
    """A processed event of the tenant's project, of a type no handler takes (the worker ignores it)."""
    return ProcessorEventFactory.create(
        stripe_event_id=event_id,
        type="test.replayed_in_worker",
        created=created,
        payload={"id": event_id, "type": "test.replayed_in_worker", "data": {"object": {}}},
        status="processed",
        project=tenant.project,
    )


def _poll(api: Any, url: str, *, timeout: float = 60) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body: dict[str, Any] = response.json()
        return body if body["status"] != "running" else None

    result: dict[str, Any] = eventually(final, timeout=timeout, what=f"{url} finished")
    return result


def test_a_replay_and_a_catalog_sync_complete_in_the_worker(
    alice: Tenant,
    stripe_sandbox: SandboxProcess,
    stripe_client: stripe.StripeClient,
    queue: str,
    to_worker: None,
) -> None:
    now = datetime.now(tz=UTC)
    for n in range(3):
        _ledger_event(alice, f"evt_worker_{n}", now - timedelta(minutes=10 - n))
    product = stripe_client.v1.products.create(params={"name": "Team", "metadata": {"project": "alpha"}})
    stripe_client.v1.prices.create(params={"product": product.id, "unit_amount": 900, "currency": "eur"})

    api = alice.client()
    # Both are asked for before any worker runs: the answers cannot have waited for the work.
    replay = api.post("/api/v1/billing/replays", {"since": "2023-01-01T00:00:00Z"}, format="json")
    assert replay.status_code == 202, replay.content
    assert replay.json()["status"] == "running"
    assert replay.json()["counts"] == {"selected": 3}
    sync = api.post("/api/v1/catalog/sync")
    assert sync.status_code == 202, sync.content
    assert sync.json()["status"] == "running"
    time.sleep(0.5)
    assert ReplayRun.objects.get(pk=replay.json()["id"]).status == "running"  # queued, nobody took it

    worker = _worker(stripe_sandbox, queue)
    try:
        done = _poll(api, replay["Location"])
        synced = _poll(api, sync["Location"])
    finally:
        _stop(worker)

    assert done["status"] == "succeeded", done
    assert done["counts"] == {"selected": 3, "processed": 0, "ignored": 3, "failed": 0, "skipped": 0}
    assert [r["event_id"] for r in done["results"]] == ["evt_worker_0", "evt_worker_1", "evt_worker_2"]
    assert done["finished_at"] is not None
    assert synced["status"] == "succeeded", synced
    assert synced["counts"] == {"products": 1, "prices": 1, "skipped": 0}
    assert CatalogProduct.objects.get(stripe_product_id=product.id).project == alice.project


def test_a_run_whose_worker_is_killed_is_marked_failed_by_the_sweep(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, queue: str, to_worker: None
) -> None:
    stripe_client.v1.products.create(params={"name": "Slow", "metadata": {"project": "alpha"}})
    # The worker's first Stripe call now takes 20 s: long enough to kill it in the middle.
    stripe_sandbox.set_fault("/v1/products", method="GET", delay_ms=20_000)
    api = alice.client()
    worker = _worker(stripe_sandbox, queue)
    try:
        accepted = api.post("/api/v1/catalog/sync")
        assert accepted.status_code == 202
        broker = redis.Redis.from_url(BROKER)
        eventually(lambda: broker.llen(queue) == 0, timeout=30, what="the worker took the task")
        time.sleep(1.0)  # acknowledged on receipt, and now waiting on Stripe
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
        stripe_sandbox.clear_faults()
    run = api.get(accepted["Location"]).json()
    assert run["status"] == "running"  # nobody is going to finish it

    # The sweep, once the run is older than RUN_STALE_AFTER_SECONDS.
    assert stale_runs_sweep(now=timezone.now() + timedelta(hours=1))["catalog.CatalogSyncRun"] == 1
    run = api.get(accepted["Location"]).json()
    assert run["status"] == "failed"
    assert "stale-run sweep" in run["error"]
