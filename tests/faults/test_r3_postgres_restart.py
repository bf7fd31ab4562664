"""R3: PostgreSQL restarted under webhook load: 5xx only while it is down, every event processed
exactly once, the service ready again within 10 s of the database.

The web server (gunicorn with docker/gunicorn.conf.py) and a worker use a private PostgreSQL cluster
(tests/faults/private_services.py: initdb + pg_ctl on a free port, its database a pg_dump copy of the
pytest test database, so it holds this test's tenant and catalog) and a private Redis (cache and
broker). Threads subscribe users at the Stripe sandbox for the whole run; the sandbox delivers each
event (15 a user: customer, payment method, subscription, invoice, a one-time payment...) to the
service's endpoint, signed, with 20% duplicates, and redelivers on any non-2xx as Stripe does (its
retry schedule compressed 1000 times). Mid-run the cluster is stopped (`pg_ctl stop -m fast`, which
cuts every connection) and started again.

Rows a worker's batch had claimed when its connection died stay `processing` until beat's sweeper
finds the claim stale (minutes); the test ages those claims and runs `manage.py sweep_ledger`, as beat
would later, and reports how many there were.

Checked after the run, in the private database: every event the sandbox produced is in the ledger
once and processed (or ignored), each user has one active subscription, one `pro` entitlement and
one payment's revenue (the RevenueDay totals are the sum of the entries: nothing applied twice).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import stripe
from django.db import connection

from apps.catalog.demo import demo_catalog_seed
from apps.common.stripe_gateway import webhook_endpoint_replace
from apps.projects.models import App
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant, make_tenant
from tests.faults.conftest import Service
from tests.faults.private_services import PrivateCluster
from tests.faults.processes import ROOT, Process, WebServer
from tests.faults.report import full_form, record_figure

pytestmark = [
    pytest.mark.faults,
    pytest.mark.requires_postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
]

TEST = "R3 PostgreSQL restart under webhook load"
# (users subscribed over the run, seconds before the stop, seconds down, seconds after the start)
USERS, BEFORE, DOWN, AFTER = (150, 8.0, 10.0, 8.0) if full_form() else (24, 3.0, 3.0, 3.0)
SUBSCRIBERS = 3  # threads subscribing users at the sandbox
READY_WITHIN = 10.0  # seconds after the database is back
PAYMENT = 4900  # minor units, each user's one-time payment
DRAIN_TIMEOUT = 120.0 if full_form() else 45.0


@dataclass
class Timeline:
    """Wall-clock instants (time.time(), the clock of the sandbox's delivery log)."""

    stop_begun: float = 0.0
    down: float = 0.0  # pg_ctl stop returned: no connection possible
    up: float = 0.0  # pg_ctl start returned: accepting connections
    ready_again: float | None = None
    ready_probes: list[tuple[float, int]] = field(default_factory=list)


@dataclass
class Stack:
    tenant: Tenant
    sandbox: SandboxProcess
    cluster: PrivateCluster
    database: str
    web: WebServer
    worker: Process
    endpoint_id: str
    price_id: str
    env: dict[str, str]


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    with PrivateCluster.running_cluster() as cluster:
        yield cluster


@pytest.fixture
def stack(service: Service, cluster: PrivateCluster) -> Stack:
    """The tenant and catalog made in the test database and copied into the private cluster; the
    web server and a worker of `service` (private Redis and sandbox) pointed at that copy."""
    sandbox = service.sandbox
    client = stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.base_url}, max_network_retries=0)
    tenant = make_tenant("r3faults")
    App.objects.filter(pk=tenant.app.pk).update(rate_limit="100000000/min")
    prices = {key.removeprefix("r3faults-"): price for key, price, _ in demo_catalog_seed(project=tenant.project)}
    price_id = prices["pro-monthly"]
    # Registered before the server exists (its secret goes into the server's environment), pointed
    # at it once it listens.
    endpoint = webhook_endpoint_replace(url="http://127.0.0.1:9/r3-not-yet", enabled_events=["*"])
    # Stripe's own client timeout is tens of seconds: a slow ack on a loaded two-core machine is not
    # a failed delivery.
    sandbox.configure(duplicate_probability=0.2, delivery_timeout_s=10.0, retry_time_scale=0.001)
    database = "billing_r3"
    cluster.database_clone(database, connection.settings_dict)
    env = {"DATABASE_URL": cluster.url(database), "STRIPE_WEBHOOK_SECRETS": str(endpoint["secret"])}
    worker = service.worker(**env)
    web = service.web(**env)
    client.v1.webhook_endpoints.update(endpoint["id"], params={"url": f"{web.base_url}/api/v1/webhooks/stripe"})
    return Stack(tenant, sandbox, cluster, database, web, worker, endpoint["id"], price_id, {**service.env, **env})


def _subscribe(stack: Stack, user_id: str) -> None:
    """A user subscribes and pays once at "Stripe": 15 events, each delivered to the service."""
    auth = {"Authorization": f"Bearer {stack.sandbox.api_key}"}
    base = stack.sandbox.base_url
    project = stack.tenant.project
    metadata = {
        "metadata[project]": project.slug,
        "metadata[project_id]": str(project.pk),
        "metadata[user_id]": user_id,
    }
    customer = requests.post(f"{base}/v1/customers", headers=auth, data=metadata, timeout=30)
    assert customer.status_code == 200, customer.text[:300]
    customer_id = customer.json()["id"]
    attached = requests.post(
        f"{base}/v1/payment_methods/pm_card_visa/attach", headers=auth, data={"customer": customer_id}, timeout=30
    )
    assert attached.status_code == 200, attached.text[:300]
    subscription = requests.post(
        f"{base}/v1/subscriptions",
        headers=auth,
        data={
            "customer": customer_id,
            "items[0][price]": stack.price_id,
            "default_payment_method": "pm_card_visa",
            **metadata,
        },
        timeout=30,
    )
    assert subscription.status_code == 200 and subscription.json()["status"] == "active", subscription.text[:300]
    # A one-time payment with the routing metadata: the revenue ledger's entry is what counts it once.
    payment = requests.post(
        f"{base}/v1/payment_intents",
        headers=auth,
        data={
            "amount": str(PAYMENT),
            "currency": "usd",
            "customer": customer_id,
            "payment_method": "pm_card_visa",
            "confirm": "true",
            **metadata,
        },
        timeout=30,
    )
    assert payment.status_code == 200 and payment.json()["status"] == "succeeded", payment.text[:300]


class Subscribers:
    """Users subscribing at an even pace over `seconds`, from a few threads."""

    def __init__(self, stack: Stack, users: int, seconds: float) -> None:
        self.stack = stack
        self.users = [f"r3-user-{i}" for i in range(users)]
        self.interval = seconds / users
        self.errors: list[str] = []
        self._next = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(SUBSCRIBERS)]
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=120)

    def _run(self) -> None:
        while True:
            with self._lock:
                index = self._next
                self._next += 1
            if index >= len(self.users):
                return
            delay = self.started + index * self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                _subscribe(self.stack, self.users[index])
            except Exception as exc:  # reported by the test, not lost in a thread
                with self._lock:
                    self.errors.append(f"{self.users[index]}: {exc}")


class ReadyProbe:
    """GET /ready every 100 ms: when the service says it is ready again after the restart."""

    def __init__(self, web: WebServer, timeline: Timeline) -> None:
        self.url = f"{web.base_url}/ready"
        self.timeline = timeline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            at = time.time()
            try:
                status = session.get(self.url, timeout=5).status_code
            except requests.RequestException:
                status = 0
            self.timeline.ready_probes.append((at, status))
            if status == 200 and self.timeline.up and at >= self.timeline.up and self.timeline.ready_again is None:
                self.timeline.ready_again = at
            self._stop.wait(0.1)


def _query(stack: Stack, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return stack.cluster.query(stack.database, sql, params)


def _ledger(stack: Stack) -> dict[str, str]:
    return {
        str(event_id): str(status)
        for event_id, status in _query(stack, "SELECT stripe_event_id, status FROM processor_events")
    }


def _settled(stack: Stack, events: set[str]) -> bool:
    deliveries = stack.sandbox.deliveries(endpoint_id=stack.endpoint_id)
    if any(d["status"] == "pending" for d in deliveries):
        return False
    ledger = _ledger(stack)
    return events <= set(ledger) and all(status in ("processed", "ignored") for status in ledger.values())


def _quiet_but_stuck(stack: Stack) -> bool:
    """Every delivery answered, nothing waiting, and only `processing` rows left over: only the
    sweeper will move them (their worker's batch died with the database connection)."""
    deliveries = stack.sandbox.deliveries(endpoint_id=stack.endpoint_id)
    if any(d["status"] == "pending" for d in deliveries):
        return False
    statuses = set(_ledger(stack).values())
    return "processing" in statuses and not statuses & {"received", "failed"} and _still(stack)


def _still(stack: Stack, seconds: float = 3.0) -> bool:
    """No row changed status for `seconds`."""
    before = _ledger(stack)
    time.sleep(seconds)
    return _ledger(stack) == before


def _sweep_as_beat_would(stack: Stack) -> None:
    _query(stack, "UPDATE processor_events SET claimed_at = claimed_at - interval '1 day' WHERE status = 'processing'")
    done = subprocess.run(
        [sys.executable, "manage.py", "sweep_ledger"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _events(stack: Stack) -> set[str]:
    return {d["event_id"] for d in stack.sandbox.deliveries(endpoint_id=stack.endpoint_id)}


def test_a_postgres_restart_loses_no_event_and_the_service_recovers(stack: Stack) -> None:
    timeline = Timeline()
    subscribers = Subscribers(stack, USERS, BEFORE + DOWN + AFTER)
    probe = ReadyProbe(stack.web, timeline)
    probe.start()
    subscribers.start()
    try:
        time.sleep(BEFORE)
        timeline.stop_begun = time.time()
        stack.cluster.stop(mode="fast")
        timeline.down = time.time()
        time.sleep(DOWN)
        stack.cluster.start()
        timeline.up = time.time()
        subscribers.join()
        assert subscribers.errors == [], subscribers.errors[:5]
        # Every event the sandbox produced has been acknowledged and processed.
        drain_started = time.monotonic()
        deadline = drain_started + DRAIN_TIMEOUT
        while not _settled(stack, _events(stack)) and time.monotonic() < deadline:
            if _quiet_but_stuck(stack):
                break
            time.sleep(0.5)
        drained_after = time.monotonic() - drain_started
    finally:
        probe.stop()
    # Rows a batch had claimed when the database went away stay `processing` until beat's sweeper
    # finds their claim stale (WEBHOOK_SWEEP_PROCESSING_AFTER_SECONDS, minutes). The test does not
    # wait minutes: it ages those claims and runs the sweeper, as beat would later.
    stuck = [event_id for event_id, status in _ledger(stack).items() if status == "processing"]
    swept_after = None
    if stuck:
        sweep_started = time.monotonic()
        _sweep_as_beat_would(stack)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not _settled(stack, _events(stack)) and time.monotonic() < deadline:
            time.sleep(0.5)
        swept_after = time.monotonic() - sweep_started

    deliveries = stack.sandbox.deliveries(endpoint_id=stack.endpoint_id)
    events = {d["event_id"] for d in deliveries}
    ledger = _ledger(stack)
    attempts = [a for d in deliveries for a in d["attempts"]]
    ready_at = timeline.ready_again
    # The window in which a 5xx is expected: from the stop until the service said it was ready again.
    window_end = ready_at if ready_at is not None else timeline.up + READY_WITHIN
    server_errors = [a for a in attempts if a["status"] is not None and a["status"] >= 500]

    def outage(attempt: dict[str, Any]) -> bool:
        return bool(
            attempt["at"] + attempt["duration_ms"] / 1000 >= timeline.stop_begun and attempt["at"] <= window_end
        )

    outside = [a for a in server_errors if not outage(a)]
    refused = [a for a in attempts if a["status"] is not None and 300 <= a["status"] < 500]
    no_answer = [a for a in attempts if a["status"] is None]
    no_answer_outside = [
        {**a, "s_after_stop": round(a["at"] - timeline.stop_begun, 2)} for a in no_answer if not outage(a)
    ]
    not_2xx_first = {d["event_id"] for d in deliveries if d["attempts"] and d["attempts"][0]["status"] != 200}
    unsettled = {event_id: status for event_id, status in ledger.items() if status not in ("processed", "ignored")}

    record_figure(TEST, "users subscribed", USERS)
    record_figure(TEST, "events (distinct)", len(events))
    record_figure(TEST, "deliveries (with 20% duplicates)", len(deliveries))
    record_figure(TEST, "delivery attempts", len(attempts))
    record_figure(TEST, "database down", round(timeline.up - timeline.stop_begun, 2), "s")
    record_figure(TEST, "5xx answers", len(server_errors))
    record_figure(TEST, "5xx outside the outage", len(outside))
    record_figure(TEST, "4xx answers", len(refused))
    record_figure(TEST, "attempts without an answer", len(no_answer))
    record_figure(TEST, "attempts without an answer outside the outage", len(no_answer_outside))
    record_figure(TEST, "events redelivered after a non-2xx", len(not_2xx_first))
    record_figure(
        TEST,
        "/ready again after the database",
        round(ready_at - timeline.up, 2) if ready_at is not None else "never",
        "s" if ready_at is not None else "",
    )
    record_figure(TEST, "ledger rows", len(ledger))
    record_figure(TEST, "ledger rows not processed", len(unsettled))
    record_figure(
        TEST,
        "acknowledged and processed (but the rows left for the sweeper), after the last subscription",
        round(drained_after, 1),
        "s",
    )
    record_figure(TEST, "events left `processing` by the restart (for the sweeper)", len(stuck))
    if swept_after is not None:
        record_figure(TEST, "processed after the sweeper ran", round(swept_after, 1), "s")

    assert ready_at is not None and ready_at - timeline.up <= READY_WITHIN, (ready_at, timeline.up)
    assert outside == [], outside[:5]
    assert refused == [], refused[:5]
    assert no_answer_outside == [], no_answer_outside[:5]
    assert server_errors, "no delivery met the outage: the restart was not under load"
    assert all(d["status"] == "succeeded" for d in deliveries), [d for d in deliveries if d["status"] != "succeeded"][
        :3
    ]
    assert set(ledger) == events, (events - set(ledger), set(ledger) - events)
    assert unsettled == {}, unsettled

    _assert_effects_once(stack)


def _assert_effects_once(stack: Stack) -> None:
    project_id = stack.tenant.project.pk
    subscriptions = _query(
        stack, "SELECT user_id, status FROM entitlements_subscriptionrecord WHERE project_id = %s", project_id
    )
    assert sorted(user for user, _ in subscriptions) == sorted(f"r3-user-{i}" for i in range(USERS))
    assert {status for _, status in subscriptions} == {"active"}
    entitled = _query(
        stack,
        "SELECT user_id, count(*) FROM entitlements_entitlement "
        "WHERE project_id = %s AND feature_code = 'pro' GROUP BY user_id",
        project_id,
    )
    assert len(entitled) == USERS and {count for _, count in entitled} == {1}, entitled[:5]
    payments = _query(
        stack,
        "SELECT count(*), coalesce(sum(amount), 0) FROM entitlements_revenueentry "
        "WHERE project_id = %s AND kind = 'payment'",
        project_id,
    )
    assert payments == [(USERS, USERS * PAYMENT)], payments
    # The day totals are kept in each entry's transaction: an entry applied twice would show here.
    days = _query(
        stack, "SELECT coalesce(sum(gross), 0) FROM entitlements_revenueday WHERE project_id = %s", project_id
    )
    assert days == [(USERS * PAYMENT,)], days
    record_figure(TEST, "subscriptions, entitlements, payments per user", "1, 1, 1")
