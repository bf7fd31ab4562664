"""Every delivery order of a one-time purchase's events ends in the same purchase, ledger and access.

Stripe does not order deliveries: a refund may arrive before the checkout completion that records
the purchase. Real handlers, real ledger, signed deliveries through the endpoint, on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.test import Client

from apps.catalog.models import PriceFeature
from apps.entitlements.models import Entitlement, Purchase, RevenueEntry
from apps.entitlements.selectors import entitlement_check
from apps.entitlements.services import purchase_record, purchase_refund_apply, revenue_refund_record
from apps.projects.models import Project
from apps.webhooks.models import ProcessorEvent
from tests.conftest import Tenant, committed, make_tenant
from tests.factories import BillingCustomerFactory, CheckoutSessionFactory, PriceFeatureFactory, RevenueEntryFactory
from tests.webhooks.conftest import deliver, make_event

pytestmark = [pytest.mark.django_db, pytest.mark.requires_postgres]

T0 = int(time.time()) - 3600
AMOUNT = 4900
PARTIAL = 1000
PRICE = "price_lifetime"

COMPLETED, SUCCEEDED, FULL_REFUND, PARTIAL_REFUND = range(4)
NAMES = ("completed", "succeeded", "full_refund", "partial_refund")


def _order_id(order: tuple[int, ...]) -> str:
    return "-".join(NAMES[index] for index in order)


def _setup(tenant: Tenant, key: str) -> str:
    """The user's customer and local checkout session, as checkout_session_create leaves them."""
    PriceFeature.objects.get_or_create(project=tenant.project, stripe_price_id=PRICE, feature_code="lifetime")
    user_id = f"user_{key}"
    customer = BillingCustomerFactory.create(project=tenant.project, user_id=user_id, stripe_customer_id=f"cus_{key}")
    CheckoutSessionFactory.create(
        project=tenant.project,
        customer=customer,
        user_id=user_id,
        mode="payment",
        stripe_price_id=PRICE,
        success_url="https://alpha.example/ok",
        cancel_url="https://alpha.example/no",
        status="open",
        stripe_session_id=f"cs_{key}",
    )
    return user_id


def _events(key: str, user_id: str, slug: str = "alpha") -> list[dict[str, Any]]:
    metadata = {"project": slug, "user_id": user_id}
    charge = {"id": f"ch_{key}", "object": "charge", "amount": AMOUNT, "currency": "usd", "customer": f"cus_{key}"}
    return [
        make_event(
            f"evt_{key}_completed",
            "checkout.session.completed",
            created=T0 + 10,
            obj={
                "id": f"cs_{key}",
                "object": "checkout.session",
                "mode": "payment",
                "payment_status": "paid",
                "amount_total": AMOUNT,
                "currency": "usd",
                "customer": f"cus_{key}",
                "client_reference_id": user_id,
                "payment_intent": f"pi_{key}",
                "metadata": metadata,
            },
        ),
        make_event(
            f"evt_{key}_succeeded",
            "payment_intent.succeeded",
            created=T0 + 5,
            obj={
                "id": f"pi_{key}",
                "object": "payment_intent",
                "amount": AMOUNT,
                "amount_received": AMOUNT,
                "currency": "usd",
                "customer": f"cus_{key}",
                "metadata": metadata,
            },
        ),
        make_event(
            f"evt_{key}_full",
            "charge.refunded",
            created=T0 + 200,
            obj={**charge, "payment_intent": f"pi_{key}", "amount_refunded": AMOUNT, "refunded": True},
        ),
        make_event(
            f"evt_{key}_partial",
            "charge.refunded",
            created=T0 + 100,
            obj={**charge, "payment_intent": f"pi_{key}", "amount_refunded": PARTIAL, "refunded": False},
        ),
    ]


def _final_state(project: Project, key: str, user_id: str) -> dict[str, Any]:
    purchase = Purchase.objects.get(stripe_checkout_session_id=f"cs_{key}")
    revenue = RevenueEntry.objects.filter(project=project, stripe_payment_intent_id=f"pi_{key}").aggregate(
        gross=Sum("amount", filter=Q(kind="payment"), default=0),
        refunded=Sum("amount", filter=Q(kind="refund"), default=0),
    )
    windows = sorted(
        Entitlement.objects.filter(project=project, user_id=user_id).values_list(
            "feature_code", "source", "valid_from", "valid_to"
        )
    )
    return {
        "purchase": (purchase.status, purchase.amount, purchase.amount_refunded, purchase.refunded_at),
        "revenue": revenue,
        "windows": windows,
        "active": entitlement_check(project_id=project.pk, user_id=user_id, feature_code="lifetime")[0],
    }


def _at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))), ids=_order_id)
def test_every_delivery_order_ends_refunded_with_the_same_ledger(
    client: Client, alice: Tenant, order: tuple[int, ...]
) -> None:
    key = "".join(map(str, order))
    user_id = _setup(alice, key)
    events = _events(key, user_id)
    for index in order:
        with committed():
            assert deliver(client, events[index]).status_code == 200
    assert set(ProcessorEvent.objects.values_list("status", flat=True)) == {"processed"}

    state = _final_state(alice.project, key, user_id)
    # The full refund wins whatever came first; a partial one arriving later never lowers it.
    assert state["purchase"] == ("refunded", AMOUNT, AMOUNT, _at(T0 + 200))
    assert state["revenue"] == {"gross": AMOUNT, "refunded": AMOUNT}
    assert state["windows"] == [("lifetime", "purchase", _at(T0 + 10), _at(T0 + 200))]
    assert state["active"] is False

    # Redeliveries and late retries change nothing.
    with committed():
        for event in events:
            assert deliver(client, event).json()["duplicate"] is True
    assert _final_state(alice.project, key, user_id) == state


@pytest.mark.parametrize("revoke_on_partial", [False, True])
@pytest.mark.parametrize("order", list(itertools.permutations([COMPLETED, SUCCEEDED, PARTIAL_REFUND])), ids=_order_id)
def test_a_partial_refund_in_any_order_revokes_only_if_the_project_says_so(
    client: Client, alice: Tenant, order: tuple[int, ...], revoke_on_partial: bool
) -> None:
    Project.objects.filter(pk=alice.project.pk).update(revoke_on_partial_refund=revoke_on_partial)
    key = "p" + "".join(map(str, order))
    user_id = _setup(alice, key)
    events = _events(key, user_id)
    for index in order:
        with committed():
            assert deliver(client, events[index]).status_code == 200

    state = _final_state(alice.project, key, user_id)
    assert state["purchase"] == ("paid", AMOUNT, PARTIAL, _at(T0 + 100))
    assert state["revenue"] == {"gross": AMOUNT, "refunded": PARTIAL}
    assert state["active"] is (not revoke_on_partial)
    ends = _at(T0 + 100) if revoke_on_partial else None
    assert state["windows"] == [("lifetime", "purchase", _at(T0 + 10), ends)]


def test_a_refund_seen_first_is_named_in_the_purchase_change(client: Client, alice: Tenant) -> None:
    user_id = _setup(alice, "first")
    events = _events("first", user_id)
    with committed():
        deliver(client, events[FULL_REFUND])
        deliver(client, events[COMPLETED])
    completed = ProcessorEvent.objects.get(stripe_event_id="evt_first_completed")
    assert any("(the refund arrived first)" in change for change in completed.changes), completed.changes
    assert Purchase.objects.get().status == "refunded"


def test_a_refund_of_another_project_is_not_applied_to_this_purchase(
    client: Client, alice: Tenant, bob: Tenant
) -> None:
    """The refund rows are looked up within the purchase's project."""
    user_id = _setup(alice, "iso")
    RevenueEntryFactory.create(
        project=bob.project,
        kind="refund",
        stripe_object_id="ch_other@4900",
        stripe_charge_id="ch_other",
        stripe_payment_intent_id="pi_iso",
        amount=AMOUNT,
        currency="usd",
        occurred_at=_at(T0),
    )
    with committed():
        deliver(client, _events("iso", user_id)[COMPLETED])
    assert Purchase.objects.get().status == "paid"
    assert entitlement_check(project_id=alice.project.pk, user_id=user_id, feature_code="lifetime")[0] is True


@pytest.mark.django_db(transaction=True)
def test_a_refund_processed_while_its_purchase_is_being_recorded_is_not_lost() -> None:
    """Two workers at once: the purchase's transaction is open when the refund is processed.

    Without the payment's lock the refund finds no committed purchase and the purchase finds no
    committed refund; with it, the refund waits for the purchase to commit and then applies.
    """
    tenant = make_tenant("alpha")
    PriceFeatureFactory.create(project=tenant.project, stripe_price_id=PRICE, feature_code="lifetime")
    recorded = threading.Event()
    refund_started = threading.Event()
    errors: list[BaseException] = []

    def record_purchase() -> None:
        try:
            with transaction.atomic():
                purchase_record(
                    project=tenant.project,
                    user_id="u1",
                    price_id=PRICE,
                    amount=AMOUNT,
                    currency="usd",
                    paid_at=_at(T0 + 10),
                    payment_intent_id="pi_race",
                    checkout_session_id="cs_race",
                )
                recorded.set()
                refund_started.wait(timeout=10)
                time.sleep(0.3)  # the refund is now running (and, with the lock, waiting for us)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def refund() -> None:
        try:
            recorded.wait(timeout=10)
            refund_started.set()
            with transaction.atomic():
                revenue_refund_record(
                    project=tenant.project,
                    charge_id="ch_race",
                    amount_refunded_total=AMOUNT,
                    currency="usd",
                    occurred_at=_at(T0 + 200),
                    payment_intent_id="pi_race",
                )
                purchase_refund_apply(
                    project=tenant.project,
                    payment_intent_id="pi_race",
                    amount_refunded=AMOUNT,
                    refunded_at=_at(T0 + 200),
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=record_purchase), threading.Thread(target=refund)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    purchase = Purchase.objects.get(stripe_payment_intent_id="pi_race")
    assert (purchase.status, purchase.amount_refunded) == ("refunded", AMOUNT)
