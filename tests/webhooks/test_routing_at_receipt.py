"""Events are routed to their project and user when they arrive, so failed ones are the tenant's too."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from apps.entitlements.models import RevenueEntry
from apps.webhooks import receive, registry
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.processing import event_process
from apps.webhooks.registry import Outcome, StripeEvent
from tests.conftest import Tenant, committed
from tests.factories import BillingCustomerFactory
from tests.webhooks.conftest import deliver, make_event

pytestmark = pytest.mark.django_db
REPLAYS = "/api/v1/billing/replays"


def _intent(event_id: str, **obj: Any) -> dict[str, Any]:
    return make_event(
        event_id,
        "payment_intent.succeeded",
        obj={
            "id": "pi_r",
            "object": "payment_intent",
            "amount_received": 1500,
            "currency": "usd",
            "metadata": {"project": "alpha", "user_id": "u_meta"},
            **obj,
        },
    )


def test_an_event_is_routed_by_its_metadata_before_it_is_processed(client: Client, alice: Tenant) -> None:
    assert deliver(client, _intent("evt_meta")).status_code == 200  # not committed: not processed
    row = ProcessorEvent.objects.get()
    assert (row.status, row.project_id, row.user_id) == ("received", alice.project.pk, "u_meta")


def test_an_event_is_routed_by_its_customer(client: Client, alice: Tenant) -> None:
    BillingCustomerFactory.create(project=alice.project, user_id="u_cus", stripe_customer_id="cus_r")
    charge = {"id": "ch_r", "object": "charge", "customer": "cus_r", "amount_refunded": 0}
    assert deliver(client, make_event("evt_cus", "charge.refunded", obj=charge)).status_code == 200
    row = ProcessorEvent.objects.get()
    assert (row.project_id, row.user_id) == (alice.project.pk, "u_cus")


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "x", "metadata": ["project", "alpha"]},
        {"id": "x", "metadata": {"project": {"slug": "alpha"}, "user_id": "u"}},
        {"id": "x", "metadata": {"project": "alpha", "user_id": "u" * 256}},
        {"id": "x", "customer": ["cus_1"]},
        {"id": "x", "metadata": {"project": "nowhere", "user_id": "u"}},
    ],
)
def test_an_event_of_odd_shape_or_no_known_project_is_stored_unrouted(
    client: Client, alice: Tenant, obj: dict[str, Any]
) -> None:
    assert deliver(client, make_event("evt_odd", "payment_intent.succeeded", obj=obj)).status_code == 200
    row = ProcessorEvent.objects.get()
    assert (row.project_id, row.user_id) == (None, "")


def test_a_catalog_event_is_routed_to_the_project_without_a_user(client: Client, alice: Tenant) -> None:
    product = {"id": "prod_r", "object": "product", "metadata": {"project": "alpha"}}
    assert deliver(client, make_event("evt_prod", "product.updated", obj=product)).status_code == 200
    row = ProcessorEvent.objects.get()
    assert (row.project_id, row.user_id) == (alice.project.pk, "")


def test_a_failed_event_keeps_its_project_and_its_tenants_ops_key_replays_it(
    client: Client, handlers: dict[str, Any], alice: Tenant, bob: Tenant
) -> None:
    broken = True

    @registry.handles("payment_intent.succeeded")
    def flaky(event: StripeEvent) -> Outcome:
        if broken:
            raise RuntimeError("a bug, since fixed")
        return Outcome("processed", project_id=alice.project.pk, changes=["applied"])

    deliver(client, _intent("evt_fails"))
    row = ProcessorEvent.objects.get()
    with pytest.raises(RuntimeError):
        event_process(ledger_id=row.pk)
    row.refresh_from_db()
    assert (row.status, row.project_id, row.user_id) == ("failed", alice.project.pk, "u_meta")

    # Another tenant's ops key neither selects it nor learns of it.
    with committed():  # the replay's task is enqueued on commit (and runs eagerly in tests)
        bobs = bob.client().post(REPLAYS, {"event_ids": ["evt_fails"]}, format="json")
    assert bobs.status_code == 202
    bobs_run = bob.client().get(bobs["Location"]).json()
    assert bobs_run["counts"]["selected"] == 0 and bobs_run["results"] == []
    row.refresh_from_db()
    assert row.status == "failed"

    broken = False  # the fix is deployed
    with committed():
        response = alice.client().post(REPLAYS, {"event_ids": ["evt_fails"]}, format="json")
    assert response.status_code == 202, response.content
    body = alice.client().get(response["Location"]).json()
    assert body["status"] == "succeeded"
    assert body["counts"]["selected"] == 1 and body["counts"]["processed"] == 1
    assert body["results"][0]["changes"] == ["applied"]
    row.refresh_from_db()
    assert (row.status, row.project_id) == ("processed", alice.project.pk)


def test_a_failed_routing_read_stores_the_event_unrouted_and_processing_routes_it(
    client: Client, alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(event_type: str, obj: dict[str, Any]) -> None:
        raise OperationalError("the read timed out")

    monkeypatch.setattr(receive, "route_event", down)
    assert deliver(client, _intent("evt_late_route")).status_code == 200
    row = ProcessorEvent.objects.get()
    assert (row.status, row.project_id, row.user_id) == ("received", None, "")

    event_process(ledger_id=row.pk)
    row.refresh_from_db()
    assert (row.status, row.project_id, row.user_id) == ("processed", alice.project.pk, "u_meta")
    assert RevenueEntry.objects.get().amount == 1500


def test_a_routed_delivery_stays_cheap(client: Client, alice: Tenant, django_assert_max_num_queries: Any) -> None:
    deliver(client, _intent("evt_warm"))
    # The insert and its savepoint, plus one read per routing key (project by slug; customer).
    with django_assert_max_num_queries(5):
        assert deliver(client, _intent("evt_cheap", id="pi_cheap")).status_code == 200


def test_a_price_event_of_an_unlinked_product_is_stored_unrouted_despite_its_metadata(
    client: Client, alice: Tenant
) -> None:
    # A price belongs to its linked product's project only, as its handler routes it.
    price = {"id": "price_r", "object": "price", "product": "prod_unlinked", "metadata": {"project": "alpha"}}
    assert deliver(client, make_event("evt_price", "price.updated", obj=price)).status_code == 200
    row = ProcessorEvent.objects.get()
    assert (row.project_id, row.user_id) == (None, "")
