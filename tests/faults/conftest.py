"""Fixtures of the fault suite: the service's own processes for one test, and a Stripe-like driver.

Each test gets a private Redis (broker and cache), a private Stripe sandbox (its clock is the test's
to move) and builds the web server and workers it needs through `service`; all of them are stopped
when the test ends, failing or not. The processes use the test database pytest-django made, so the
tests are transactional (committed data) and need PostgreSQL: skipped on a bare SQLite run, a failure
in CI (tests/conftest.py's requires_postgres).

`make test` runs the short form of every test; `make proof` sets FAULTS_FULL=1 (report.full_form()).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stripe_sandbox.testing import SandboxProcess
from tests.faults import processes
from tests.faults.processes import Process, Redis, WebServer

WEBHOOK_SECRET = "whsec_fault_suite_0123456789"
WEBHOOK_PATH = "/api/v1/webhooks/stripe"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the fault suite (tests/faults): starts the service's own processes")


@pytest.fixture
def fault_dir(tmp_path: Path) -> Path:
    """Where this test's processes write their logs and state (pytest keeps the last runs' directories)."""
    return tmp_path


@pytest.fixture
def private_redis(fault_dir: Path) -> Iterator[Redis]:
    redis = processes.redis_server(fault_dir / "redis")
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def fault_sandbox(fault_dir: Path) -> Iterator[SandboxProcess]:
    """A sandbox of this test's own: tests move its clock, which never moves back."""
    with SandboxProcess.start(retry_time_scale=0.001, delivery_timeout=2.0, workdir=fault_dir / "sandbox") as sandbox:
        yield sandbox


@dataclass
class Service:
    """The processes of one test, all sharing one environment; stop_all() stops every one of them."""

    env: dict[str, str]
    log_dir: Path
    redis: Redis
    sandbox: SandboxProcess
    started: list[Process] = field(default_factory=list)
    webs: list[WebServer] = field(default_factory=list)

    def web(self, **env: str) -> WebServer:
        server = processes.start_web({**self.env, **env}, log_dir=self.log_dir)
        self.webs.append(server)
        self.started.append(server.process)
        return server

    def worker(self, name: str = "worker", **env: str) -> Process:
        worker = processes.start_worker({**self.env, **env}, log_dir=self.log_dir, name=name)
        self.started.append(worker)
        return worker

    def broker_url(self) -> str:
        return self.env["CELERY_BROKER_URL"]

    def stop_all(self) -> None:
        """Stops every process this test started, all at once (each: signal, wait, kill)."""
        webs = {id(web.process): web for web in self.webs}

        def stop(process: Process) -> None:
            if id(process) in webs:
                webs[id(process)].stop()
            else:
                # A worker's warm shutdown waits for its task (a drain may have most of a minute of
                # budget left): what a test left unfinished is not waited for.
                process.stop(timeout=5)

        with ThreadPoolExecutor(max_workers=max(len(self.started), 1)) as pool:
            list(pool.map(stop, self.started))


@pytest.fixture
def service(fault_dir: Path, private_redis: Redis, fault_sandbox: SandboxProcess, settings: Any) -> Iterator[Service]:
    """The environment of the web server and workers a test starts (service.web(), service.worker()).

    The test process's own gateway points at the same sandbox, so what it sets up through the
    service's code (a catalog) lands where its processes look.
    """
    settings.STRIPE_API_HOST = fault_sandbox.base_url
    settings.STRIPE_SECRET_KEY = fault_sandbox.api_key
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    env = processes.service_env(
        var_dir=fault_dir / "var",
        redis_url=private_redis.url(0),
        broker_url=private_redis.url(1),
        stripe_api_host=fault_sandbox.base_url,
        stripe_secret_key=fault_sandbox.api_key,
        webhook_secret=WEBHOOK_SECRET,
    )
    stack = Service(env=env, log_dir=fault_dir / "logs", redis=private_redis, sandbox=fault_sandbox)
    try:
        yield stack
    finally:
        stack.stop_all()


# --- Stripe's side of a webhook delivery --------------------------------------------------------


def stripe_signature(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends: t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<body>")."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


@dataclass
class Delivery:
    event_id: str
    status: int  # the last answer (0: no answer)
    attempts: int
    seconds: float  # the last attempt's round trip


def deliver(base_url: str, event: dict[str, Any], *, retries: int = 5, timeout: float = 10.0) -> Delivery:
    """POSTs one event as Stripe does; a non-2xx answer or no answer is retried (Stripe retries too),
    here after 0.2 s, 0.4 s, ... rather than Stripe's minutes."""
    body = json.dumps(event).encode()
    status, attempts, seconds = 0, 0, 0.0
    for attempt in range(retries + 1):
        attempts += 1
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            base_url + WEBHOOK_PATH,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body)},
        )
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except OSError:
            status = 0
        seconds = time.perf_counter() - began
        if 200 <= status < 300:
            break
        time.sleep(0.2 * (attempt + 1))
    return Delivery(str(event["id"]), status, attempts, seconds)


def deliver_all(base_url: str, events: Iterable[dict[str, Any]], *, concurrency: int = 8) -> list[Delivery]:
    """Every event delivered by a pool of `concurrency` senders, in the order given (so concurrently
    with its neighbours: a duplicate may arrive at the same time as its original)."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda event: deliver(base_url, event), events))


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- the ledger, read from the test database ----------------------------------------------------


def ledger_statuses() -> dict[str, int]:
    from django.db.models import Count

    from apps.webhooks.models import ProcessorEvent

    rows = ProcessorEvent.objects.values("status").annotate(n=Count("id")).order_by()
    return {row["status"]: row["n"] for row in rows}


UNFINISHED = ("received", "processing", "failed")


def ledger_drained(expected: int) -> bool:
    """Every one of `expected` rows is in the ledger, and none is waiting, in progress or failed."""
    counts = ledger_statuses()
    return sum(counts.values()) >= expected and not any(counts.get(status) for status in UNFINISHED)


# --- hand-made events with countable effects and no Stripe call ---------------------------------


def stripe_event(event_id: str, event_type: str, obj: dict[str, Any], *, created: int) -> dict[str, Any]:
    """An event as Stripe renders it in the pinned API version (what the webhook view accepts)."""
    from django.conf import settings

    return {
        "id": event_id,
        "object": "event",
        "api_version": settings.STRIPE_API_VERSION,
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def payment_events(
    project_slug: str, count: int, *, prefix: str, created: int, users: int = 20
) -> list[dict[str, Any]]:
    """`count` events, alternately a payment (payment_intent.succeeded) and a partial refund of it
    (charge.refunded), each routed by its metadata: each leaves exactly one revenue entry, so "processed
    exactly once" is a count of rows. One second apart from `created` on, in that order."""
    events: list[dict[str, Any]] = []
    for index in range(count):
        number = index // 2
        metadata = {"project": project_slug, "user_id": f"{prefix}-user-{number % users}"}
        amount = 1000 + number
        if index % 2 == 0:
            obj: dict[str, Any] = {
                "id": f"pi_{prefix}_{number}",
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount,
                "currency": "usd",
                "status": "succeeded",
                "metadata": metadata,
            }
            kind = "payment_intent.succeeded"
        else:
            obj = {
                "id": f"ch_{prefix}_{number}",
                "object": "charge",
                "amount": amount,
                "amount_refunded": amount // 2,
                "refunded": False,
                "currency": "usd",
                "status": "succeeded",
                "payment_intent": f"pi_{prefix}_{number}",
                "metadata": metadata,
            }
            kind = "charge.refunded"
        events.append(stripe_event(f"evt_{prefix}_{index}", kind, obj, created=created + index))
    return events


def payment_effects(prefix: str) -> tuple[int, int]:
    """(payment entries, refund entries) the events of payment_events(prefix=...) left."""
    from apps.entitlements.models import RevenueEntry

    entries = RevenueEntry.objects.filter(stripe_object_id__contains=f"_{prefix}_")
    return (
        entries.filter(kind=RevenueEntry.Kind.PAYMENT).count(),
        entries.filter(kind=RevenueEntry.Kind.REFUND).count(),
    )


_SENDERS: dict[str, Any] = {}


def wake_drain(broker_url: str) -> bool:
    """Sends the ledger drain's wake-up to the test's workers, as beat's periodic drain would, when
    the service has such a task (a worker killed with a wake-up in hand took it with it). False: none."""
    from celery import Celery

    from billing_service.celery import app

    if "webhooks.drain_ledger" not in app.tasks:
        return False
    sender = _SENDERS.setdefault(broker_url, Celery(broker=broker_url, set_as_current=False))
    sender.send_task("webhooks.drain_ledger")
    return True
