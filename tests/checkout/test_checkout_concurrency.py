from __future__ import annotations

import threading

import pytest
import stripe
from django.db import connection

from apps.checkout.models import BillingCustomer
from tests.checkout.conftest import checkout_body
from tests.conftest import Tenant

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.requires_postgres]


def test_ten_simultaneous_first_checkouts_create_exactly_one_stripe_customer(
    alice: Tenant, catalog: dict[str, str], stripe_client: stripe.StripeClient
) -> None:
    body = checkout_body(alice, catalog["pro-monthly"], user_id="brand-new-user")
    barrier = threading.Barrier(10)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def first_checkout() -> None:
        try:
            api = alice.client()
            barrier.wait()  # all ten leave together, on ten connections
            statuses.append(api.post("/api/v1/checkout/session", body, format="json").status_code)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_checkout) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert statuses == [201] * 10
    customers = stripe_client.v1.customers.list(params={"limit": 100}).data
    assert len(customers) == 1
    assert (
        BillingCustomer.objects.get(project=alice.project, user_id="brand-new-user").stripe_customer_id
        == customers[0].id
    )
    assert len(stripe_client.v1.checkout.sessions.list(params={"limit": 100}).data) == 10
