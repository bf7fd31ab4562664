"""payment_intent.payment_failed is recorded where people look, and grants or revokes nothing."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from apps.checkout.models import BillingCustomer, CheckoutSession
from apps.entitlements.models import Entitlement, Purchase
from apps.entitlements.selectors import entitlement_check
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.replays import replay_run
from tests.conftest import Tenant, committed
from tests.factories import CheckoutSessionFactory, PriceFeatureFactory
from tests.webhooks.conftest import deliver, make_event

pytestmark = pytest.mark.django_db

T0 = int(time.time()) - 3600
USER = "user_pf"


def _failures(slug: str = "alpha") -> float:
    return REGISTRY.get_sample_value("billing_payment_failures_total", {"project": slug}) or 0.0


def _session(tenant: Tenant, **fields: Any) -> CheckoutSession:
    customer, _ = BillingCustomer.objects.get_or_create(
        project=tenant.project, user_id=USER, defaults={"stripe_customer_id": "cus_pf"}
    )
    values: dict[str, Any] = {
        "project": tenant.project,
        "customer": customer,
        "user_id": USER,
        "mode": "payment",
        "stripe_price_id": "price_lifetime",
        "success_url": "https://alpha.example/ok",
        "cancel_url": "https://alpha.example/no",
        "status": "open",
        "stripe_session_id": "cs_pf",
        **fields,
    }
    return CheckoutSessionFactory.create(**values)


def _failed(
    event_id: str,
    *,
    created: int = T0 + 20,
    intent: str = "pi_pf",
    metadata: dict[str, str] | None = None,
    code: str = "card_declined",
    decline_code: str | None = "insufficient_funds",
    message: str = "Your card has insufficient funds.",
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "card_error", "code": code, "message": message}
    if decline_code:
        error["decline_code"] = decline_code
    return make_event(
        event_id,
        "payment_intent.payment_failed",
        created=created,
        obj={
            "id": intent,
            "object": "payment_intent",
            "amount": 4900,
            "currency": "usd",
            "customer": "cus_pf",
            "status": "requires_payment_method",
            "metadata": metadata if metadata is not None else {"project": "alpha", "user_id": USER},
            "last_payment_error": error,
        },
    )


def test_a_failure_is_recorded_on_its_checkout_session_the_ledger_row_and_the_counter(
    client: Client, alice: Tenant
) -> None:
    session = _session(alice)
    before = _failures()
    metadata = {"project": "alpha", "user_id": USER, "checkout_session": str(session.pk)}
    with committed():
        assert deliver(client, _failed("evt_pf_1", metadata=metadata)).status_code == 200

    session.refresh_from_db()
    assert session.last_payment_error_code == "insufficient_funds"
    assert session.last_payment_error_message == "Your card has insufficient funds."
    assert session.payment_failed_at == dt.datetime.fromtimestamp(T0 + 20, tz=dt.UTC)
    assert session.stripe_payment_intent_id == "pi_pf"
    assert session.status == "open"  # Checkout decides the session's status, not a failed attempt
    row = ProcessorEvent.objects.get(stripe_event_id="evt_pf_1")
    assert (row.status, row.project_id, row.user_id) == ("processed", alice.project.pk, USER)
    assert row.note.startswith("payment failed: insufficient_funds (Your card has insufficient funds.)")
    assert row.changes == ["checkout session cs_pf: payment failed (insufficient_funds)"]
    assert _failures() == before + 1
    # The customer's events, as support lists them.
    assert list(
        ProcessorEvent.objects.filter(project=alice.project, user_id=USER).values_list("stripe_event_id", flat=True)
    ) == ["evt_pf_1"]


def test_a_session_is_found_by_its_payment_intent_without_metadata(client: Client, alice: Tenant) -> None:
    session = _session(alice, stripe_payment_intent_id="pi_known")
    with committed():
        deliver(client, _failed("evt_pf_pi", intent="pi_known", code="expired_card", decline_code=None))
    session.refresh_from_db()
    assert session.last_payment_error_code == "expired_card"


def test_an_older_failure_delivered_late_does_not_overwrite_a_newer_one(client: Client, alice: Tenant) -> None:
    session = _session(alice, stripe_payment_intent_id="pi_pf")
    with committed():
        deliver(client, _failed("evt_new", created=T0 + 50, code="expired_card", decline_code=None, message="new"))
        deliver(client, _failed("evt_old", created=T0 + 20, message="old"))
    session.refresh_from_db()
    assert (session.last_payment_error_code, session.last_payment_error_message) == ("expired_card", "new")
    assert ProcessorEvent.objects.get(stripe_event_id="evt_old").changes == []


def test_a_failure_is_counted_once_whatever_the_replays(client: Client, alice: Tenant) -> None:
    _session(alice, stripe_payment_intent_id="pi_pf")
    before = _failures()
    with committed():
        deliver(client, _failed("evt_once"))
        deliver(client, _failed("evt_once"))  # a redelivery
    with committed():
        dry = replay_run(project_id=alice.project.pk, event_ids=["evt_once"], requested_by="ops", dry_run=True)
        real = replay_run(project_id=alice.project.pk, event_ids=["evt_once"], requested_by="ops")
    assert dry.results[0]["status"] == real.results[0]["status"] == "processed"
    assert real.results[0]["changes"] == []
    assert _failures() == before + 1
    # Counted from the ledger at scrape time: the worker that processes events serves no /metrics.
    assert 'billing_payment_failures_total{project="alpha"} 1.0' in client.get("/metrics").content.decode()


def test_a_failure_of_an_unknown_payment_is_still_counted_and_noted(client: Client, alice: Tenant) -> None:
    before = _failures()
    with committed():
        deliver(client, _failed("evt_nosession", intent="pi_unknown"))
    row = ProcessorEvent.objects.get()
    assert row.status == "processed" and row.project_id == alice.project.pk and row.user_id == USER
    assert row.note.endswith("; no checkout session")
    assert _failures() == before + 1


def test_a_failure_grants_nothing(client: Client, alice: Tenant) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_lifetime", feature_code="lifetime")
    _session(alice)
    with committed():
        deliver(client, _failed("evt_grants_nothing"))
    assert not Purchase.objects.exists()
    assert not Entitlement.objects.exists()


def test_a_failure_delivered_after_the_payment_revokes_nothing(client: Client, alice: Tenant) -> None:
    """A declined first attempt, then a paid one: Stripe may deliver the failure last."""
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_lifetime", feature_code="lifetime")
    session = _session(alice)
    completed = make_event(
        "evt_paid",
        "checkout.session.completed",
        created=T0 + 30,
        obj={
            "id": "cs_pf",
            "object": "checkout.session",
            "mode": "payment",
            "payment_status": "paid",
            "amount_total": 4900,
            "currency": "usd",
            "customer": "cus_pf",
            "payment_intent": "pi_pf",
            "metadata": {"project": "alpha", "user_id": USER},
        },
    )
    with committed():
        deliver(client, completed)
        deliver(client, _failed("evt_declined_first", created=T0 + 20))
    session.refresh_from_db()
    assert session.status == "completed"
    assert session.last_payment_error_code == "insufficient_funds"  # recorded, for support
    purchase = Purchase.objects.get()
    assert (purchase.status, purchase.amount_refunded) == ("paid", 0)
    assert entitlement_check(project_id=alice.project.pk, user_id=USER, feature_code="lifetime")[0] is True
