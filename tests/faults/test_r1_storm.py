"""R1 storm: thousands of real Stripe events over hundreds of users, delivered shuffled, duplicated and
concurrently; once the ledger is drained, the service's entitlements and money equal what the Stripe
sandbox's final state implies, with nothing lost, granted twice or stuck.

The histories are made the way production makes them: each user subscribes through the service's own
checkout API and pays on the sandbox's hosted page, then upgrades or downgrades, cancels (now or at
period end), gets a card that declines, buys a one-time add-on, is refunded, or has a payment
declined; then the sandbox clock moves past every renewal, which renews, fails or ends each
subscription. No webhook endpoint is registered meanwhile: the test reads every event from the
Events API and plays Stripe's delivery itself (signed, shuffled, 20% sent twice, 8 at a time).

The expectation is computed from the sandbox's objects by the documented rules (docs/api.md: a
subscription entitles while active or trialing, and for the project's grace days while past_due; a
one-time purchase for life unless fully refunded), not by the service's code. It is compared with
what the service's API answers (`GET /api/v1/entitlements?as_of=`) at the sandbox's "now": the
renewals put the sandbox's clock a month ahead of the service's, so "now" for the check endpoint
would be a month before the state under test.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.db.models import Sum

from apps.catalog.models import PriceFeature
from apps.catalog.services import catalog_product_upsert_from_stripe, stripe_price_mirror
from apps.common import stripe_gateway
from apps.entitlements.models import Entitlement, Purchase, RevenueEntry, SubscriptionRecord
from apps.projects.models import Project
from apps.webhooks.models import ProcessorEvent
from tests.conftest import Tenant
from tests.faults.conftest import Service, deliver_all, ledger_drained, ledger_statuses, percentile
from tests.faults.processes import wait_until
from tests.faults.report import full_form, record_figure

pytestmark = [pytest.mark.faults, pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

TEST = "R1 storm"
# Full: 10,000 events over 500 users (the figure); short: the same mix over 40 users.
USERS = 500 if full_form() else 40
DUPLICATE_SHARE = 0.2
SENDERS = 8
WORKERS = 2
DRAIN_TIMEOUT = 1800 if full_form() else 90
GRACE_DAYS = 3  # the project's past_due_grace_days (the model's default, set explicitly below)
OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000009995"  # insufficient_funds at payment
DECLINING_PM = "pm_card_chargeCustomerFail"  # attaches, then every charge fails (the renewal)
PLANS = {  # key: (unit_amount, interval or None for one-time, feature)
    "basic": (500, "month", "basic"),
    "pro": (1500, "month", "pro"),
    "export": (4900, None, "export"),
}
# What happens to each user's subscription before the renewal, with its weight.
FATES = {"keep": 30, "switch": 20, "cancel_now": 15, "cancel_at_period_end": 15, "card_declines": 20}


def _catalog(project: Project) -> dict[str, str]:
    """Three prices mapped to three features, through the service's own catalog code. key -> price id."""
    prices: dict[str, str] = {}
    for key, (amount, interval, feature) in PLANS.items():
        product = stripe_gateway.product_create(
            project_slug=project.slug,
            idempotency_key=f"storm-product-{key}",
            params={"name": f"Storm {key}", "metadata": {"project": project.slug, "slug": key}},
        )
        catalog_product_upsert_from_stripe(project=project, data=product)
        params: dict[str, Any] = {
            "product": product["id"],
            "unit_amount": amount,
            "currency": "usd",
            "lookup_key": f"{project.slug}-storm-{key}",
            "metadata": {"project": project.slug},
        }
        if interval:
            params["recurring"] = {"interval": interval}
        price = stripe_gateway.price_create(
            project_slug=project.slug, idempotency_key=f"storm-price-{key}", params=params
        )
        stripe_price_mirror(project=project, data=price)
        PriceFeature.objects.update_or_create(
            project=project, stripe_price_id=price["id"], defaults={"feature_code": feature}
        )
        prices[key] = price["id"]
    return prices


class Driver:
    """Plays the users (through the service's checkout API and the hosted page) and Stripe's side."""

    def __init__(self, web_url: str, sandbox_url: str, api_key: str, tenant: Tenant, prices: dict[str, str]) -> None:
        self.web_url = web_url
        self.sandbox_url = sandbox_url
        self.tenant = tenant
        self.prices = prices
        self.http = requests.Session()
        self.stripe_headers = {"Authorization": f"Bearer {api_key}"}

    def stripe(self, method: str, path: str, data: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.http.request(
            method, self.sandbox_url + path, data=data, headers=self.stripe_headers, timeout=60
        )
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text[:300]}"
        return dict(response.json())

    def stripe_list(self, path: str, **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query = {"limit": "100", **params, **({"starting_after": after} if after else {})}
            response = self.http.get(self.sandbox_url + path, params=query, headers=self.stripe_headers, timeout=60)
            assert response.status_code == 200, response.text[:300]
            page = response.json()
            found += page["data"]
            if not page["has_more"]:
                return found
            after = page["data"][-1]["id"]

    def checkout(self, user_id: str, plan: str, card: str = OK_CARD) -> tuple[str, int]:
        """A checkout created by the service for the user, paid on the hosted page. (session id, answer)"""
        body = {
            "user_id": user_id,
            "project_id": self.tenant.project.pk,
            "price_id": self.prices[plan],
            "mode": "payment" if PLANS[plan][1] is None else "subscription",
            "success_url": "https://alpha.example/ok",
            "cancel_url": "https://alpha.example/no",
        }
        response = self.http.post(
            f"{self.web_url}/api/v1/checkout/session", json=body, headers={"X-API-Key": self.tenant.key}, timeout=60
        )
        assert response.status_code == 201, response.text[:500]
        url = str(response.json()["checkout_url"])
        paid = self.http.post(f"{url}/pay", data={"card_number": card}, allow_redirects=False, timeout=60)
        assert paid.status_code in (303, 402), paid.text[:300]
        return url.rstrip("/").rsplit("/", 1)[-1], paid.status_code

    def live_user(self, index: int, seed: int) -> None:
        rng = random.Random(seed * 100_003 + index)
        user = f"storm-{index}"
        plan = "basic" if rng.random() < 0.6 else "pro"
        session_id, _ = self.checkout(user, plan)
        sub_id = str(self.stripe("GET", f"/v1/checkout/sessions/{session_id}")["subscription"])
        fate = rng.choices(list(FATES), weights=list(FATES.values()))[0]
        if fate == "switch":
            item = self.stripe("GET", f"/v1/subscriptions/{sub_id}")["items"]["data"][0]["id"]
            other = "pro" if plan == "basic" else "basic"
            self.stripe(
                "POST", f"/v1/subscriptions/{sub_id}", {"items[0][id]": item, "items[0][price]": self.prices[other]}
            )
        elif fate == "cancel_now":
            self.stripe("DELETE", f"/v1/subscriptions/{sub_id}")
        elif fate == "cancel_at_period_end":
            self.stripe("POST", f"/v1/subscriptions/{sub_id}", {"cancel_at_period_end": "true"})
        elif fate == "card_declines":
            self.stripe("POST", f"/v1/subscriptions/{sub_id}", {"default_payment_method": DECLINING_PM})
        if rng.random() < 0.1:  # a one-time payment declined on the hosted page (payment_intent.payment_failed)
            self.checkout(user, "export", card=DECLINED_CARD)
        if rng.random() < 0.4:
            session_id, answer = self.checkout(user, "export")
            assert answer == 303
            if rng.random() < 0.5:
                intent = self.stripe("GET", f"/v1/checkout/sessions/{session_id}")["payment_intent"]
                charge = self.stripe("GET", f"/v1/payment_intents/{intent}")["latest_charge"]
                self.stripe("POST", "/v1/refunds", {"charge": str(charge)})


def _period_end(sub: dict[str, Any]) -> int:
    return max(int(item["current_period_end"]) for item in sub["items"]["data"])


def _period_start(sub: dict[str, Any]) -> int:
    return max(int(item["current_period_start"]) for item in sub["items"]["data"])


def _expected(driver: Driver, now: int) -> tuple[dict[str, set[str]], dict[str, Any]]:
    """Each user's features at `now` by the documented rules, from the sandbox's objects alone."""
    feature_of = {price: PLANS[key][2] for key, price in driver.prices.items()}
    expected: dict[str, set[str]] = {}
    subscriptions = driver.stripe_list("/v1/subscriptions", status="all")
    for sub in subscriptions:
        user = sub["metadata"]["user_id"]
        features = expected.setdefault(user, set())
        status = sub["status"]
        entitles = (status in ("active", "trialing") and now < _period_end(sub)) or (
            status == "past_due" and now < _period_start(sub) + GRACE_DAYS * 86400
        )
        if entitles:
            features.update(feature_of[item["price"]["id"]] for item in sub["items"]["data"])
    charges = {charge["payment_intent"]: charge for charge in driver.stripe_list("/v1/charges")}
    intents = driver.stripe_list("/v1/payment_intents")
    for intent in intents:
        user = (intent.get("metadata") or {}).get("user_id")
        if not user or intent["status"] != "succeeded":
            continue  # an invoice's payment (no metadata) or a declined one
        charge = charges[intent["id"]]
        if charge["amount_refunded"] < charge["amount"]:
            expected.setdefault(user, set()).add("export")
    money = {
        "subscriptions": {sub["id"]: sub for sub in subscriptions},
        "payments": sum(1 for intent in intents if intent["status"] == "succeeded"),
        "paid": sum(int(c["amount"]) for c in charges.values() if c["status"] == "succeeded"),
        "refunded": sum(int(c["amount_refunded"]) for c in charges.values()),
        "one_time": sum(1 for i in intents if (i.get("metadata") or {}).get("user_id") and i["status"] == "succeeded"),
    }
    return expected, money


def _served(web_url: str, tenant: Tenant, users: list[str], at: int) -> dict[str, set[str]]:
    """Each user's active features at `at`, as the service's API answers them."""
    instant = dt.datetime.fromtimestamp(at, tz=dt.UTC).isoformat().replace("+00:00", "Z")

    def features(user: str) -> tuple[str, set[str]]:
        response = requests.get(
            f"{web_url}/api/v1/entitlements",
            params={"user_id": user, "project_id": str(tenant.project.pk), "as_of": instant},
            headers={"X-API-Key": tenant.key},
            timeout=30,
        )
        assert response.status_code == 200, response.text[:300]
        return user, {row["feature_code"] for row in response.json()["entitlements"] if row["active"]}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(features, users))


def test_a_storm_of_shuffled_duplicated_concurrent_events_ends_in_the_sandbox_state(
    service: Service, alice: Tenant
) -> None:
    alice.project.past_due_grace_days = GRACE_DAYS
    alice.project.save(update_fields=["past_due_grace_days"])
    prices = _catalog(alice.project)
    sandbox = service.sandbox
    web = service.web()
    driver = Driver(web.base_url, sandbox.base_url, sandbox.api_key, alice, prices)
    seed = int(time.time())

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: driver.live_user(i, seed), range(USERS)))
    subscriptions = driver.stripe_list("/v1/subscriptions", status="all")
    renewal = max(_period_end(sub) for sub in subscriptions) + 3600
    sandbox.advance_clock(to=renewal)
    now = sandbox.now()
    events = driver.stripe_list("/v1/events")
    record_figure(TEST, "users", USERS)
    record_figure(TEST, "seed (the histories and the delivery order)", seed)
    record_figure(TEST, "histories made in", round(time.monotonic() - began, 1), "s")
    record_figure(TEST, "distinct events", len(events))
    record_figure(TEST, "event types", len({event["type"] for event in events}))

    rng = random.Random(seed)
    deliveries = events + rng.sample(events, int(DUPLICATE_SHARE * len(events)))
    rng.shuffle(deliveries)
    for index in range(WORKERS):
        service.worker(name=f"worker-{index}")
    started = time.monotonic()
    answers = deliver_all(web.base_url, deliveries, concurrency=SENDERS)
    acked = time.monotonic()
    wait_until(lambda: ledger_drained(len(events)), timeout=DRAIN_TIMEOUT, interval=0.25, what="ledger drained")
    drained = time.monotonic()

    record_figure(TEST, "deliveries (20% duplicates)", len(deliveries))
    record_figure(TEST, "deliveries acknowledged 2xx", sum(1 for a in answers if 200 <= a.status < 300))
    record_figure(TEST, "deliveries retried (non-2xx first)", sum(1 for a in answers if a.attempts > 1))
    record_figure(TEST, "ack p50", round(percentile([a.seconds for a in answers], 0.5) * 1000, 1), "ms")
    record_figure(TEST, "ack p99", round(percentile([a.seconds for a in answers], 0.99) * 1000, 1), "ms")
    record_figure(TEST, "all delivered in", round(acked - started, 1), "s")
    record_figure(TEST, "drained (first delivery to last event processed)", round(drained - started, 1), "s")
    record_figure(TEST, "events processed per second (whole storm)", round(len(events) / (drained - started), 1))
    assert all(200 <= a.status < 300 for a in answers), Counter(a.status for a in answers)

    # 0 lost: every distinct event is in the ledger, finished.
    ids = {event["id"] for event in events}
    ledger = dict(ProcessorEvent.objects.filter(stripe_event_id__in=ids).values_list("stripe_event_id", "status"))
    lost = ids - set(ledger)
    statuses = ledger_statuses()
    record_figure(TEST, "lost (not in the ledger)", len(lost))
    record_figure(
        TEST,
        "stuck (received, processing or failed)",
        sum(statuses.get(s, 0) for s in ("received", "processing", "failed")),
    )
    record_figure(TEST, "ledger statuses", dict(sorted(statuses.items())))
    assert not lost
    assert set(ledger.values()) <= {"processed", "ignored"}, Counter(ledger.values())
    attempts = Counter(ProcessorEvent.objects.values_list("attempts", flat=True))
    record_figure(TEST, "ledger rows by attempts", dict(sorted(attempts.items())))

    # Entitlements: what the sandbox's final state implies, at the sandbox's "now".
    expected, money = _expected(driver, now)
    users = sorted(expected)
    served = _served(web.base_url, alice, users, now)
    wrong = {user: (served[user], expected[user]) for user in users if served[user] != expected[user]}
    record_figure(TEST, "users with the expected entitlements", len(users) - len(wrong))
    record_figure(TEST, "users with other entitlements", len(wrong))
    assert not wrong, dict(list(wrong.items())[:10])

    # 0 double grants: every effect once, counted against the sandbox's objects.
    records = dict(SubscriptionRecord.objects.values_list("stripe_subscription_id", "status"))
    assert records == {sub_id: sub["status"] for sub_id, sub in money["subscriptions"].items()}
    payments = RevenueEntry.objects.filter(kind=RevenueEntry.Kind.PAYMENT)
    refunds = RevenueEntry.objects.filter(kind=RevenueEntry.Kind.REFUND)
    paid = payments.aggregate(total=Sum("amount"))["total"] or 0
    refunded = refunds.aggregate(total=Sum("amount"))["total"] or 0
    record_figure(TEST, "revenue payments (entries / sandbox)", f"{payments.count()} / {money['payments']}")
    record_figure(TEST, "revenue paid (ledger / sandbox)", f"{paid} / {money['paid']}", "minor units")
    record_figure(TEST, "revenue refunded (ledger / sandbox)", f"{refunded} / {money['refunded']}", "minor units")
    assert payments.count() == money["payments"]
    assert (paid, refunded) == (money["paid"], money["refunded"])
    assert Purchase.objects.count() == money["one_time"]
    grants = Counter(Entitlement.objects.values_list("user_id", "feature_code", "source", "source_id"))
    doubled = [key for key, n in grants.items() if n > 1]
    record_figure(TEST, "double grants", len(doubled) + (payments.count() - money["payments"]))
    assert not doubled
