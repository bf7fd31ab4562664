"""A real Celery worker SIGKILLed in the middle of an event: the ledger row is left `processing`
with nothing committed, and the sweeper has it processed, exactly once in effect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.db import connection

from apps.entitlements.models import SubscriptionRecord
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.sweeper import ledger_sweep
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant, committed
from tests.e2e.conftest import eventually
from tests.entitlements.conftest import subscription_snapshot
from tests.factories import PriceFeatureFactory, ProcessorEventFactory
from tests.sandbox_objects import sandbox_subscription
from tests.webhooks.conftest import SECRET, deliver, make_event

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/9"


def _worker(sandbox: SandboxProcess) -> subprocess.Popen[bytes]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_service.settings",
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "STRIPE_API_HOST": sandbox.base_url,
        "STRIPE_SECRET_KEY": sandbox.api_key,
        "LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "celery", "-A", "billing_service", "worker", "--pool", "solo", "-l", "WARNING"]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def test_a_worker_killed_mid_event_is_completed_by_the_sweeper_exactly_once(
    client: Any, alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: Any, settings: Any
) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    # A subscription at the sandbox, so that the worker's refetch has something to fetch.
    sub_id, _ = sandbox_subscription(stripe_client, user_id="u-kill")
    created = int(time.time()) - 60
    snapshot = subscription_snapshot(sub_id, status="trialing", user_id="u-kill")
    with committed():  # the first event of that second, processed here
        assert (
            deliver(
                client, make_event("evt_kill_1", "customer.subscription.updated", created=created, obj=snapshot)
            ).status_code
            == 200
        )
    assert SubscriptionRecord.objects.get(stripe_subscription_id=sub_id).status == "trialing"

    # A second event of the same second: its processing refetches the subscription from Stripe,
    # which the sandbox now answers after 20 s, long enough to kill the worker in the middle.
    second = make_event("evt_kill_2", "customer.subscription.updated", created=created, obj=snapshot)
    # Stored as the webhook view stores it, but handed to the real worker instead of run here.
    row = ProcessorEventFactory.create(
        stripe_event_id=second["id"],
        type=second["type"],
        api_version=second["api_version"],
        created=datetime.fromtimestamp(created, tz=UTC),
        payload=second,
        raw_body=json.dumps(second),
        headers={},
        project=None,
        status=ProcessorEvent.Status.RECEIVED,
        changes=[],
    )
    stripe_sandbox.set_fault(f"/v1/subscriptions/{sub_id}", method="GET", delay_ms=20_000)

    worker = _worker(stripe_sandbox)
    try:
        # A sender of its own (not made current): the test process keeps running tasks eagerly.
        Celery(broker=BROKER, set_as_current=False).send_task("webhooks.process_event", args=[row.pk])
        eventually(lambda: ProcessorEvent.objects.get(pk=row.pk).status == "processing", timeout=30, what="claimed")
        time.sleep(1.0)  # inside the handler now, waiting on Stripe
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed = ProcessorEvent.objects.get(pk=row.pk)
    assert killed.status == "processing"
    assert (
        SubscriptionRecord.objects.get(stripe_subscription_id=sub_id).last_event_id == "evt_kill_1"
    )  # nothing committed

    stripe_sandbox.clear_faults()
    settings.WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS = 1
    time.sleep(1.5)
    with committed():
        swept = ledger_sweep()
    assert sum(swept.values()) >= 1
    done = ProcessorEvent.objects.get(pk=row.pk)
    assert done.status == "processed"
    assert done.attempts == 2
    record = SubscriptionRecord.objects.get(stripe_subscription_id=sub_id)
    assert record.last_event_id == "evt_kill_2"
    assert record.status == "active"  # Stripe's current state, fetched on the retry
    with committed():
        ledger_sweep()
    assert ProcessorEvent.objects.get(pk=row.pk).attempts == 2  # not processed again
