"""R9: Stripe answering 429, 500 and slowly during checkouts and webhook refetches.

The shipped web server (and, for refetches, a worker) talk to a private Stripe sandbox whose fault
rules (docs/sandbox.md) answer before the write (a 429 or 500: nothing applied), after it
(`after_apply`: the object is made and its answer stored under the Idempotency-Key, then a 500), or
late (`delay_ms`, longer than the service's Stripe timeout for one of them). What must hold:
- every faulted call is retried (the sandbox's request counts: each fault costs one more request);
- a retry carries the same Idempotency-Key: an `after_apply` fault or a timed-out request followed
  by a retry with another key would leave two objects; the sandbox holds exactly one customer per
  user and one checkout session per checkout, and each customer's creating request carried the key
  derived from the service's own row (`billing-customer-<id>`);
- when the retry budget (STRIPE_RETRY_BUDGET_SECONDS) runs out, the caller gets a 502 with a message
  and Stripe's request id, in about the budget's time, and nothing half-made stays behind; Stripe's
  `Stripe-Should-Retry: false` is a 502 at once, without a retry;
- a refetch that meets faults is retried and the event processed once; one whose budget runs out
  leaves the event `failed` with nothing applied, and it is processed once when Stripe is back.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import stripe
from django.utils import timezone

from apps.catalog.demo import demo_catalog_seed
from apps.checkout.models import BillingCustomer, CheckoutSession
from apps.entitlements.models import SubscriptionRecord
from apps.projects.models import App
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.sweeper import ledger_sweep
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant, committed, make_tenant
from tests.faults.conftest import Service, deliver, stripe_event
from tests.faults.processes import WebServer, wait_until
from tests.faults.report import full_form, record_figure

pytestmark = [
    pytest.mark.faults,
    pytest.mark.requires_postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
]

TEST = "R9 Stripe faults"
CHECKOUTS = 40 if full_form() else 8
REFETCHES = 20 if full_form() else 4
BUDGET = 5.0  # STRIPE_RETRY_BUDGET_SECONDS of the service's processes in this test
TIMEOUT = 2.0  # STRIPE_TIMEOUT_SECONDS: the one slow answer below takes longer
STRIPE_ENV = {"STRIPE_RETRY_BUDGET_SECONDS": str(BUDGET), "STRIPE_TIMEOUT_SECONDS": str(TIMEOUT)}


@dataclass
class Shop:
    tenant: Tenant
    sandbox: SandboxProcess
    stripe: stripe.StripeClient
    web: WebServer
    price_id: str

    def checkout(self, user_id: str) -> tuple[requests.Response, float]:
        body = {
            "user_id": user_id,
            "project_id": self.tenant.project.pk,
            "price_id": self.price_id,
            "mode": "subscription",
            "success_url": "https://r9faults.example/ok",
            "cancel_url": "https://r9faults.example/no",
        }
        started = time.monotonic()
        response = requests.post(
            f"{self.web.base_url}/api/v1/checkout/session",
            json=body,
            headers={"X-API-Key": self.tenant.key},
            timeout=60,
        )
        return response, time.monotonic() - started

    def listed(self, path: str, **filters: str) -> list[dict[str, Any]]:
        """Every object of a list endpoint at the sandbox (read past its pages)."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100, **filters}
        while True:
            page = json.loads(self.stripe.raw_request("get", path, **params).body)
            found += page["data"]
            if not page["has_more"]:
                return found
            params["starting_after"] = page["data"][-1]["id"]

    def posts(self, route: str) -> int:
        return int(self.sandbox.request_stats()["by_route"].get(f"POST {route}", 0))


@pytest.fixture
def shop(service: Service) -> Shop:
    sandbox = service.sandbox
    client = stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.base_url}, max_network_retries=0)
    tenant = make_tenant("r9faults")
    App.objects.filter(pk=tenant.app.pk).update(rate_limit="100000000/min")
    prices = {key.removeprefix("r9faults-"): price for key, price, _ in demo_catalog_seed(project=tenant.project)}
    web = service.web(**STRIPE_ENV)
    sandbox.reset_request_stats()
    return Shop(tenant, sandbox, client, web, prices["pro-monthly"])


def test_checkouts_retry_faults_with_one_key_and_answer_a_clear_502_past_the_budget(shop: Shop) -> None:
    sandbox = shop.sandbox
    # Transient faults, each for a few requests: every checkout must still succeed.
    sandbox.set_fault("/v1/customers", method="POST", status=429, retry_after=1, count=2)
    sandbox.set_fault("/v1/customers", method="POST", status=500, after_apply=True, count=2)
    sandbox.set_fault("/v1/checkout/sessions", method="POST", status=500, count=2)
    sandbox.set_fault("/v1/checkout/sessions", method="POST", status=500, after_apply=True, count=2)
    sandbox.set_fault("/v1/checkout/sessions", method="POST", delay_ms=int(TIMEOUT * 1000) + 1500, count=1)
    sandbox.set_fault("/v1/checkout/sessions", method="POST", delay_ms=500, count=2)
    users = [f"r9-user-{i}" for i in range(CHECKOUTS)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(shop.checkout, users))
    assert [r.status_code for r, _ in results] == [201] * CHECKOUTS, [r.text[:300] for r, _ in results]
    assert sandbox.faults() == [], "every transient fault was met"
    time.sleep(TIMEOUT + 2)  # the slow request has finished at the sandbox too (as a replay)

    customers = shop.listed("/v1/customers")
    sessions = shop.listed("/v1/checkout/sessions")
    stats = sandbox.request_stats()
    customer_posts, session_posts = shop.posts("/v1/customers"), shop.posts("/v1/checkout/sessions")
    record_figure(TEST, "checkouts (all 201)", CHECKOUTS)
    record_figure(TEST, "fault rules: 429 / 500 / 500 after the write / slow / too slow", "2 / 2 / 4 / 2 / 1")
    record_figure(TEST, "faulted answers", json.dumps(stats["faulted"], sort_keys=True))
    record_figure(TEST, "POST /v1/customers requests", customer_posts)
    record_figure(TEST, "POST /v1/checkout/sessions requests", session_posts)
    record_figure(TEST, "customers / checkout sessions at Stripe", f"{len(customers)} / {len(sessions)}")
    record_figure(TEST, "checkout p100 latency", round(max(seconds for _, seconds in results), 2), "s")

    # One object per user and per checkout: no retry made a second one.
    assert sorted(c["metadata"]["user_id"] for c in customers) == sorted(users)
    assert len(sessions) == CHECKOUTS and len({s["customer"] for s in sessions}) == CHECKOUTS
    assert {s["id"] for s in sessions} == set(CheckoutSession.objects.values_list("stripe_session_id", flat=True))
    # Every faulted answer was followed by a retry: each costs one more request, and so does the
    # answer that came too late. (An `after_apply` rule met by the retry of an earlier `after_apply`
    # fault is spent on a replay, which the sandbox answers with the stored object: 4 to 6 500s.)
    faulted = {status: int(count) for status, count in stats["faulted"].items()}
    assert faulted.get("429") == 2 and 4 <= faulted.get("500", 0) <= 6, faulted
    assert customer_posts + session_posts >= 2 * CHECKOUTS + sum(faulted.values()) + 1, (customer_posts, session_posts)
    # Each customer was made by a request carrying the key of the service's own row.
    keys = {
        event["data"]["object"]["id"]: event["request"]["idempotency_key"]
        for event in shop.listed("/v1/events", type="customer.created")
    }
    for customer in BillingCustomer.objects.filter(project=shop.tenant.project):
        assert keys[customer.stripe_customer_id] == f"billing-customer-{customer.pk}"

    _the_budget_runs_out(shop)


def _the_budget_runs_out(shop: Shop) -> None:
    sandbox = shop.sandbox
    sessions_before = len(shop.listed("/v1/checkout/sessions"))

    # A 500 that lasts: retried until the budget is spent, then a 502 that says so.
    sandbox.set_fault("/v1/checkout/sessions", method="POST", status=500, duration_s=BUDGET + 5)
    posts = shop.posts("/v1/checkout/sessions")
    response, seconds = shop.checkout("r9-late-1")
    tries = shop.posts("/v1/checkout/sessions") - posts
    _assert_clear_502(response)
    # Within the budget (plus one request's timeout and slack for a loaded machine); it may stop
    # earlier, when the next jittered wait would end past the budget.
    assert seconds <= BUDGET + TIMEOUT + 3, (seconds, tries, response.text)
    assert tries >= 2, tries
    failed = CheckoutSession.objects.get(user_id="r9-late-1")
    assert failed.status == CheckoutSession.Status.FAILED and failed.stripe_session_id is None
    record_figure(TEST, "persistent 500: answer, tries, time", f"502, {tries}, {seconds:.1f} s")
    sandbox.clear_faults()

    # A 429 that lasts, on the customer: the same, and no customer is left half-made.
    sandbox.set_fault("/v1/customers", method="POST", status=429, retry_after=1, duration_s=BUDGET + 5)
    posts = shop.posts("/v1/customers")
    response, seconds = shop.checkout("r9-late-2")
    tries = shop.posts("/v1/customers") - posts
    _assert_clear_502(response)
    assert tries >= 2, tries
    assert seconds <= BUDGET + TIMEOUT + 3, (seconds, tries, response.text)
    assert not BillingCustomer.objects.filter(user_id="r9-late-2", stripe_customer_id__isnull=False).exists()
    record_figure(TEST, "persistent 429: answer, tries, time", f"502, {tries}, {seconds:.1f} s")
    sandbox.clear_faults()

    # Stripe says not to retry: a 502 at once, after one request.
    sandbox.set_fault("/v1/checkout/sessions", method="POST", status=500, should_retry=False, count=1)
    posts = shop.posts("/v1/checkout/sessions")
    response, seconds = shop.checkout("r9-late-3")
    tries = shop.posts("/v1/checkout/sessions") - posts
    _assert_clear_502(response)
    assert tries == 1, tries
    record_figure(TEST, "500 with Stripe-Should-Retry false: answer, tries, time", f"502, {tries}, {seconds:.1f} s")

    # Stripe is back: the same users check out, each with one customer at Stripe.
    for user in ("r9-late-1", "r9-late-2", "r9-late-3"):
        response, _ = shop.checkout(user)
        assert response.status_code == 201, response.text[:300]
    customers = shop.listed("/v1/customers")
    late = [c for c in customers if c["metadata"]["user_id"].startswith("r9-late-")]
    assert sorted(c["metadata"]["user_id"] for c in late) == ["r9-late-1", "r9-late-2", "r9-late-3"]
    assert len(shop.listed("/v1/checkout/sessions")) == sessions_before + 3


def _assert_clear_502(response: requests.Response) -> None:
    assert response.status_code == 502, (response.status_code, response.text[:500])
    body = response.json()
    assert "Stripe" in body["detail"], body
    assert str(body.get("stripe_request_id") or "").startswith("req_"), body


# --- refetches ------------------------------------------------------------------------------------


def _subscription(shop: Shop, user_id: str) -> dict[str, Any]:
    project = shop.tenant.project
    metadata = {"project": project.slug, "project_id": str(project.pk), "user_id": user_id}
    client = shop.stripe
    customer = client.v1.customers.create(params={"metadata": metadata})
    client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    subscription = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": shop.price_id}],
            "default_payment_method": "pm_card_visa",
            "metadata": metadata,
        }
    )
    # As Stripe renders it (JSON), which the SDK's typed object is not (it holds Decimals).
    snapshot: dict[str, Any] = json.loads(client.raw_request("get", f"/v1/subscriptions/{subscription.id}").body)
    return snapshot


def _processed(event_id: str) -> bool:
    return ProcessorEvent.objects.filter(stripe_event_id=event_id, status="processed").exists()


def test_refetches_retry_faults_and_a_spent_budget_fails_the_event_cleanly(service: Service, shop: Shop) -> None:
    service.worker(**STRIPE_ENV)
    created = int(time.time()) - 30
    ties: list[tuple[str, dict[str, Any]]] = []
    for index in range(REFETCHES + 1):
        snapshot = _subscription(shop, f"r9-tie-{index}")
        first = stripe_event(f"evt_r9_first_{index}", "customer.subscription.updated", snapshot, created=created)
        assert deliver(shop.web.base_url, first).status == 200
        ties.append((f"evt_r9_tie_{index}", snapshot))
    wait_until(
        lambda: all(_processed(f"evt_r9_first_{i}") for i in range(REFETCHES + 1)), timeout=60, what="first events"
    )
    sandbox = shop.sandbox
    sandbox.reset_request_stats()
    # A second event of the same second needs Stripe's current object: the refetch meets a 429, a
    # 500 and a slow answer. The last user's subscription answers 500 for longer than the budget.
    lasting = ties[-1][1]["id"]
    sandbox.set_fault(f"/v1/subscriptions/{lasting}", method="GET", status=500, duration_s=BUDGET * 3)
    sandbox.set_fault("/v1/subscriptions/", method="GET", status=429, retry_after=1, count=1)
    sandbox.set_fault("/v1/subscriptions/", method="GET", status=500, count=1)
    sandbox.set_fault("/v1/subscriptions/", method="GET", delay_ms=800, count=1)
    started = time.monotonic()
    for event_id, snapshot in ties:
        event = stripe_event(event_id, "customer.subscription.updated", snapshot, created=created)
        assert deliver(shop.web.base_url, event).status == 200
    retried = [event_id for event_id, _ in ties[:-1]]
    wait_until(lambda: all(_processed(e) for e in retried), timeout=60, what="the refetched events processed")
    processed_after = time.monotonic() - started
    failed_id = ties[-1][0]
    wait_until(
        lambda: ProcessorEvent.objects.filter(stripe_event_id=failed_id, status="failed").exists(),
        timeout=BUDGET * 3,
        what="the event whose refetch spent its budget failed",
    )
    failed = ProcessorEvent.objects.get(stripe_event_id=failed_id)
    stats = sandbox.request_stats()
    gets = int(stats["by_route"].get("GET /v1/subscriptions/{id}", 0))
    record_figure(TEST, "refetches (same-second events)", REFETCHES)
    record_figure(TEST, "refetch faults met: 429 / 500 / slow", "1 / 1 / 1")
    record_figure(TEST, "refetch GETs (with the lasting 500's tries)", gets)
    record_figure(TEST, "refetched events processed within", round(processed_after, 1), "s")
    record_figure(TEST, "refetch past the budget: event status", failed.status)

    for event_id, snapshot in ties[:-1]:
        record = SubscriptionRecord.objects.get(stripe_subscription_id=snapshot["id"])
        assert record.last_event_id == event_id and record.status == "active"
    assert stats["faulted"].get("429") == 1, stats["faulted"]
    assert int(stats["faulted"].get("500", 0)) >= 1 + 2, stats["faulted"]  # the transient one, the lasting tries
    assert gets >= REFETCHES + 2 + 2, gets  # every refetch, a retry per transient fault, the lasting one's tries
    assert "Stripe" in failed.last_error, failed.last_error[-500:]
    # Nothing of the failed event was applied: its subscription still shows the first event.
    record = SubscriptionRecord.objects.get(stripe_subscription_id=lasting)
    assert record.last_event_id == "evt_r9_first_" + str(REFETCHES)

    # Stripe is back: the sweeper's retry (its backoff aged here rather than waited) processes it once.
    sandbox.clear_faults()
    ProcessorEvent.objects.filter(pk=failed.pk).update(claimed_at=timezone.now() - dt.timedelta(days=1))
    with committed():
        ledger_sweep()
    wait_until(lambda: _processed(failed_id), timeout=60, what="the failed event processed after Stripe came back")
    record = SubscriptionRecord.objects.get(stripe_subscription_id=lasting)
    assert record.last_event_id == failed_id
    assert ProcessorEvent.objects.filter(stripe_event_id=failed_id).count() == 1
