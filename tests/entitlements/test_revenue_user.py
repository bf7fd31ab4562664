"""Every revenue ledger row names whose money it is: payments and refunds of a one-time purchase and of a
subscription invoice, through the real webhook handlers; the backfill of rows written before the
column existed; the admin list and its CSV export show the user."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from apps.entitlements.models import RevenueEntry
from apps.entitlements.services import purchase_record, revenue_payment_record, revenue_refund_record
from tests.conftest import Tenant, committed
from tests.factories import (
    NOW,
    BillingCustomerFactory,
    CheckoutSessionFactory,
    PriceFeatureFactory,
    ProcessorEventFactory,
    PurchaseFactory,
    RevenueEntryFactory,
    SubscriptionRecordFactory,
)
from tests.webhooks.conftest import SECRET, deliver, make_event

pytestmark = pytest.mark.django_db

T0 = int(time.time()) - 3600
REVENUE = reverse("admin:entitlements_revenueentry_changelist")
REVENUE_CSV = reverse("admin:entitlements_revenueentry_export_csv")


@pytest.fixture(autouse=True)
def _webhook_settings(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300


def _users(project_id: int) -> dict[tuple[str, str], str]:
    rows = RevenueEntry.objects.filter(project_id=project_id).values_list("kind", "stripe_object_id", "user_id")
    return {(kind, object_id): user_id for kind, object_id, user_id in rows}


def _deliver_all(client: Client, *events: dict[str, Any]) -> None:
    for event in events:
        with committed():
            assert deliver(client, event).status_code == 200


def test_a_one_time_purchase_payment_and_refund_carry_the_buyer(client: Client, alice: Tenant) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_life", feature_code="lifetime")
    customer = BillingCustomerFactory.create(project=alice.project, user_id="buyer_1", stripe_customer_id="cus_b1")
    CheckoutSessionFactory.create(
        project=alice.project,
        customer=customer,
        user_id="buyer_1",
        mode="payment",
        stripe_price_id="price_life",
        status="open",
        stripe_session_id="cs_b1",
    )
    metadata = {"project": "alpha", "user_id": "buyer_1"}
    intent = {"id": "pi_b1", "object": "payment_intent", "amount": 4900, "amount_received": 4900}
    charge = {"id": "ch_b1", "object": "charge", "payment_intent": "pi_b1", "currency": "usd"}
    _deliver_all(
        client,
        make_event("evt_b1_pi", "payment_intent.succeeded", created=T0, obj={**intent, "metadata": metadata}),
        # The charge names only its customer: routed through our customer link.
        make_event(
            "evt_b1_refund",
            "charge.refunded",
            created=T0 + 60,
            obj={**charge, "customer": "cus_b1", "amount": 4900, "amount_refunded": 1000},
        ),
    )

    assert _users(alice.project.pk) == {("payment", "pi_b1"): "buyer_1", ("refund", "ch_b1@1000"): "buyer_1"}


def test_a_subscription_invoice_payment_and_refund_carry_the_subscriber(
    client: Client, alice: Tenant, bob: Tenant
) -> None:
    """Stripe's invoice payment intent has no metadata of ours and no purchase: its customer names the user."""
    BillingCustomerFactory.create(project=alice.project, user_id="subscriber_7", stripe_customer_id="cus_s7")
    BillingCustomerFactory.create(project=bob.project, user_id="someone_else", stripe_customer_id="cus_other")
    intent = {
        "id": "pi_inv7",
        "object": "payment_intent",
        "customer": "cus_s7",
        "amount": 1200,
        "amount_received": 1200,
        "currency": "eur",
    }
    _deliver_all(
        client,
        make_event("evt_s7_pi", "payment_intent.succeeded", created=T0, obj=intent),
        make_event(
            "evt_s7_refund",
            "charge.refunded",
            created=T0 + 60,
            obj={
                "id": "ch_inv7",
                "object": "charge",
                "customer": "cus_s7",
                "payment_intent": "pi_inv7",
                "amount": 1200,
                "amount_refunded": 1200,
                "currency": "eur",
            },
        ),
    )

    assert _users(alice.project.pk) == {
        ("payment", "pi_inv7"): "subscriber_7",
        ("refund", "ch_inv7@1200"): "subscriber_7",
    }
    assert _users(bob.project.pk) == {}


def test_without_a_routed_user_the_purchase_of_the_payment_intent_names_it(alice: Tenant) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_life", feature_code="lifetime")
    purchase_record(
        project=alice.project,
        user_id="buyer_9",
        price_id="price_life",
        amount=900,
        currency="usd",
        paid_at=NOW,
        payment_intent_id="pi_9",
        checkout_session_id="cs_9",
    )
    revenue_payment_record(project=alice.project, payment_intent_id="pi_9", amount=900, currency="usd", occurred_at=NOW)
    revenue_refund_record(
        project=alice.project,
        charge_id="ch_9",
        amount_refunded_total=300,
        currency="usd",
        occurred_at=NOW,
        payment_intent_id="pi_9",
    )
    # A payment nothing links to stays without a user rather than guessing one.
    revenue_payment_record(project=alice.project, payment_intent_id="pi_x", amount=5, currency="usd", occurred_at=NOW)

    assert _users(alice.project.pk) == {
        ("payment", "pi_9"): "buyer_9",
        ("refund", "ch_9@300"): "buyer_9",
        ("payment", "pi_x"): "",
    }


def test_the_backfill_fills_rows_from_purchases_events_and_their_payment(alice: Tenant, bob: Tenant) -> None:
    migration = __import__("apps.entitlements.migrations.0006_revenueentry_user_id", fromlist=["fill_user_id"])
    project = alice.project
    PurchaseFactory.create(project=project, user_id="buyer_1", stripe_payment_intent_id="pi_p")
    # The same payment intent in another project is another payment: it must not lend its user.
    PurchaseFactory.create(project=bob.project, user_id="bob_user", stripe_payment_intent_id="pi_bob_only")
    SubscriptionRecordFactory.create(project=project, user_id="subscriber_2", stripe_customer_id="cus_sub2")
    ProcessorEventFactory.create(
        project=project,
        type="payment_intent.succeeded",
        user_id="",  # routed nowhere at receipt: the subscription record of its customer names the user
        payload={"data": {"object": {"id": "pi_sub", "object": "payment_intent", "customer": "cus_sub2"}}},
    )
    ProcessorEventFactory.create(
        project=project,
        type="charge.refunded",
        user_id="routed_3",
        payload={"data": {"object": {"id": "ch_r", "object": "charge", "payment_intent": ""}}},
    )
    rows = {
        "purchase_payment": RevenueEntryFactory.create(project=project, stripe_object_id="pi_p"),
        "purchase_refund": RevenueEntryFactory.create(
            project=project, kind="refund", stripe_object_id="ch_p@100", stripe_payment_intent_id="pi_p", amount=100
        ),
        "sub_payment": RevenueEntryFactory.create(project=project, stripe_object_id="pi_sub"),
        "sub_refund": RevenueEntryFactory.create(
            project=project, kind="refund", stripe_object_id="ch_s@50", stripe_payment_intent_id="pi_sub", amount=50
        ),
        "event_refund": RevenueEntryFactory.create(
            project=project, kind="refund", stripe_object_id="ch_r@70", stripe_charge_id="ch_r", amount=70
        ),
        "other_project": RevenueEntryFactory.create(project=project, stripe_object_id="pi_bob_only"),
        "unknown": RevenueEntryFactory.create(project=project, stripe_object_id="pi_unknown"),
    }

    migration.fill_user_id(django_apps, None)

    users = {name: RevenueEntry.objects.get(pk=row.pk).user_id for name, row in rows.items()}
    assert users == {
        "purchase_payment": "buyer_1",
        "purchase_refund": "buyer_1",
        "sub_payment": "subscriber_2",
        "sub_refund": "subscriber_2",
        "event_refund": "routed_3",
        "other_project": "",
        "unknown": "",
    }


@pytest.fixture
def superuser_client(client: Client) -> Client:
    user = get_user_model().objects.create_superuser("fin", "fin@example.invalid", "pw-for-tests")
    client.force_login(user)
    return client


def test_the_list_shows_and_filters_by_the_user_and_the_export_has_a_user_id_column(
    superuser_client: Client, alice: Tenant
) -> None:
    mine = RevenueEntryFactory.create(project=alice.project, user_id="user_42", amount=4900, currency="usd")
    RevenueEntryFactory.create(project=alice.project, user_id="user_7", amount=100, currency="usd")

    page = superuser_client.get(REVENUE, {"user_id": "user_42"})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [mine]
    assert f"project__id__exact={alice.project.pk}&amp;user_id=user_42" in page.content.decode()

    response = superuser_client.get(REVENUE_CSV, {"user_id": "user_42"})
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(cast(Iterator[bytes], response.streaming_content)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    assert header.index("user_id") == header.index("project__slug") + 1
    assert [(row["id"], row["user_id"], row["amount"]) for row in rows] == [(str(mine.pk), "user_42", "4900")]
