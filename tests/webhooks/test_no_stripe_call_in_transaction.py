"""Issue 9, point 1: no Stripe call is made while a transaction of ours is open.

Each handler reads Stripe in its fetch step, before the event's transaction; the apply step only
writes. On PostgreSQL, with real concurrent connections (`transaction=True`: no test transaction
wraps these tests, so what is committed is what another connection sees).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import OperationalError, connection, connections, transaction

from apps.catalog.models import CatalogProduct
from apps.entitlements import services
from apps.entitlements.models import Purchase, SubscriptionRecord
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.processing import event_process
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant
from tests.entitlements.conftest import subscription_snapshot
from tests.factories import BillingCustomerFactory, PriceFeatureFactory, ProcessorEventFactory
from tests.sandbox_objects import sandbox_subscription
from tests.transaction_guard import StripeRequests, stripe_requests
from tests.webhooks.conftest import make_event

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]

META = {"project": "alpha", "user_id": "u-tx"}


def store(event: dict[str, Any]) -> ProcessorEvent:
    """A ledger row as the webhook view stores it (processing is called by the test)."""
    return ProcessorEventFactory.create(
        stripe_event_id=event["id"],
        type=event["type"],
        api_version=event["api_version"],
        created=datetime.fromtimestamp(event["created"], tz=UTC),
        payload=event,
        raw_body=json.dumps(event),
        headers={},
        project=None,
        status=ProcessorEvent.Status.RECEIVED,
        changes=[],
    )


def faults_fired(sandbox: SandboxProcess) -> int:
    with urllib.request.urlopen(f"{sandbox.base_url}/_sandbox/faults", timeout=5) as answer:  # noqa: S310 (loopback)
        body = json.loads(answer.read())
    rules = body["faults"] if isinstance(body, dict) else body
    return sum(int(rule["fired"]) for rule in rules)


def tie_events(sub_id: str, user_id: str) -> tuple[ProcessorEvent, ProcessorEvent]:
    """Two events about one subscription in the same second: the second must ask Stripe."""
    created = int(time.time()) - 60
    snapshot = subscription_snapshot(sub_id, status="trialing", user_id=user_id)
    first = store(make_event(f"evt_{user_id}_1", "customer.subscription.updated", created=created, obj=snapshot))
    second = store(make_event(f"evt_{user_id}_2", "customer.subscription.updated", created=created, obj=snapshot))
    return first, second


def test_a_slow_refetch_holds_no_lock_on_the_subscription_row(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: Any
) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    sub_id, _ = sandbox_subscription(stripe_client, user_id="u-slow")
    first, second = tie_events(sub_id, "u-slow")
    event_process(ledger_id=first.pk)
    assert SubscriptionRecord.objects.get(stripe_subscription_id=sub_id).status == "trialing"

    # The tie makes the handler fetch the subscription from Stripe, which now answers after 3 s.
    stripe_sandbox.set_fault(f"/v1/subscriptions/{sub_id}", method="GET", delay_ms=3000)
    result: dict[str, Any] = {}

    def process() -> None:
        try:
            result["outcome"] = event_process(ledger_id=second.pk)
        except BaseException as exc:  # reported by the assertions below
            result["error"] = exc
        finally:
            connections.close_all()

    worker = threading.Thread(target=process)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while faults_fired(stripe_sandbox) == 0:  # the refetch has reached Stripe and waits there
            assert time.monotonic() < deadline, "the handler never asked Stripe"
            time.sleep(0.02)
        # Another transaction updates the same row meanwhile. It would wait for a lock held across
        # the Stripe call and give up after lock_timeout (OperationalError) instead of succeeding.
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '500ms'")
                updated = SubscriptionRecord.objects.filter(stripe_subscription_id=sub_id).update(
                    cancel_at_period_end=True
                )
        except OperationalError as exc:
            pytest.fail(f"the subscription row was locked while the handler waited on Stripe: {exc}")
        assert updated == 1
        assert worker.is_alive(), "the refetch was no longer in flight: the test proved nothing"
    finally:
        worker.join(timeout=30)
    assert "error" not in result, result
    assert result["outcome"].status == "processed"
    record = SubscriptionRecord.objects.get(stripe_subscription_id=sub_id)
    # Stripe's current object, applied after the other transaction's update, won.
    assert (record.last_event_id, record.status, record.cancel_at_period_end) == ("evt_u-slow_2", "active", False)
    assert ProcessorEvent.objects.get(pk=second.pk).status == "processed"


def test_no_handler_calls_stripe_inside_a_transaction_of_ours(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: Any, stripe_requests: StripeRequests
) -> None:
    # customer.subscription.updated in a tie: the subscription is fetched.
    sub_id, _ = sandbox_subscription(stripe_client, user_id="u-tie")
    first, second = tie_events(sub_id, "u-tie")
    event_process(ledger_id=first.pk)
    event_process(ledger_id=second.pk)
    assert SubscriptionRecord.objects.get(stripe_subscription_id=sub_id).last_event_id == "evt_u-tie_2"

    # invoice.paid about a subscription we never heard of: the subscription is fetched.
    unknown_id, _ = sandbox_subscription(stripe_client, user_id="u-inv")
    invoice = {"id": "in_tx", "object": "invoice", "status": "paid", "subscription": unknown_id, "metadata": META}
    event_process(ledger_id=store(make_event("evt_inv", "invoice.paid", created=int(time.time()), obj=invoice)).pk)
    assert SubscriptionRecord.objects.filter(stripe_subscription_id=unknown_id).exists()

    # checkout.session.completed, paid, for a session we have no row for: its line items are fetched.
    price = stripe_client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 900, "product_data": {"name": "Once"}}
    )
    session = stripe_client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://alpha.example/ok",
            "cancel_url": "https://alpha.example/no",
        }
    )
    completed = {
        "id": session.id,
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": "paid",
        "amount_total": 900,
        "currency": "usd",
        "customer": "cus_tx",
        "metadata": META,
    }
    BillingCustomerFactory.create(project=alice.project, user_id="u-tx", stripe_customer_id=None)
    event = make_event("evt_cs", "checkout.session.completed", created=int(time.time()), obj=completed)
    event_process(ledger_id=store(event).pk)
    assert Purchase.objects.get(stripe_checkout_session_id=session.id).stripe_price_id == price.id

    # product.updated and price.updated: the current objects are fetched and mirrored by dj-stripe.
    product = stripe_client.v1.products.create(params={"name": "Pro", "metadata": {"project": "alpha"}})
    product_event = make_event(
        "evt_prod",
        "product.updated",
        created=int(time.time()),
        obj={"id": product.id, "object": "product", "metadata": {"project": "alpha"}},
    )
    event_process(ledger_id=store(product_event).pk)
    assert CatalogProduct.objects.get(stripe_product_id=product.id).name == "Pro"
    catalog_price = stripe_client.v1.prices.create(
        params={"currency": "usd", "unit_amount": 100, "product": product.id}
    )
    price_event = make_event(
        "evt_price",
        "price.updated",
        created=int(time.time()),
        obj={"id": catalog_price.id, "object": "price", "product": product.id},
    )
    event_process(ledger_id=store(price_event).pk)

    assert set(ProcessorEvent.objects.values_list("status", flat=True)) == {"processed"}
    stripe_requests.assert_none_inside_our_transactions()
    fetched = {request.url.split("/v1/")[1].split("?")[0].split("/")[0] for request in stripe_requests.seen}
    assert {"subscriptions", "checkout", "products", "prices"} <= fetched


def test_a_tie_that_appears_after_the_unlocked_read_is_fetched_again(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision is made without a lock; another worker may apply a same-second event before the
    apply locks the row. The apply then refuses to guess, and the pipeline fetches again."""
    sub_id, _ = sandbox_subscription(stripe_client, user_id="u-race")
    first, second = tie_events(sub_id, "u-race")
    event_process(ledger_id=first.pk)
    real_decide = services.subscription_event_decide
    decisions: list[str] = []

    def overtaken(**kwargs: Any) -> services.SubscriptionFate:
        # The first read happens "before" the other worker applied evt_u-race_1: no tie seen yet.
        fate: services.SubscriptionFate = "apply" if not decisions else real_decide(**kwargs)
        decisions.append(fate)
        return fate

    monkeypatch.setattr(services, "subscription_event_decide", overtaken)
    outcome = event_process(ledger_id=second.pk)
    assert outcome is not None and outcome.status == "processed"
    assert decisions == ["apply", "tie"]
    record = SubscriptionRecord.objects.get(stripe_subscription_id=sub_id)
    assert (record.last_event_id, record.status) == ("evt_u-race_2", "active")  # Stripe's current state


def test_the_guard_sees_a_stripe_call_inside_a_transaction(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_requests: StripeRequests
) -> None:
    """The check above can fail: a gateway call inside a transaction (here one opened by code
    posing as ours) is reported."""
    from apps.common import stripe_gateway

    def call() -> None:
        list(stripe_gateway.products_iter(project_slug="alpha"))

    exec(  # noqa: S102 (a fixed snippet, run as if it were a module of apps/)
        "with transaction.atomic():\n    call()\n",
        {"__name__": "apps.posing", "transaction": transaction, "call": call},
    )
    (request,) = stripe_requests.seen
    assert request.in_atomic_block and request.inside_ours and not request.by_djstripe
    with pytest.raises(AssertionError, match="inside a transaction of ours"):
        stripe_requests.assert_none_inside_our_transactions()
