"""What reconciliation needs from the sandbox (issue 12): big listings with ``status=all``,
``created`` filters and cursors; bulk creation without events; a silent change for every field
the service compares; the Events API by ``created``; faults for a while; dropped deliveries."""

from __future__ import annotations

import json
import time
import urllib.error
from typing import Any

import pytest
import stripe

from stripe_sandbox.testing import SandboxProcess

from .conftest import wait_for
from .sdk_types import Checker
from .test_shape_contract import stripe_examples

DAY = 86400


def _page(client: stripe.StripeClient, path: str, **params: Any) -> dict[str, Any]:
    """One list page as JSON through the SDK's transport (no typed objects: they cost ~1 ms per
    subscription to build, which would make the big listings below measure the SDK)."""
    body: dict[str, Any] = json.loads(client.raw_request("get", path, **params).body)
    return body


def _list_all(client: stripe.StripeClient, path: str, **params: Any) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = _page(client, path, limit=100, **params, **({"starting_after": after} if after else {}))
        objects += page["data"]
        if not page["has_more"]:
            return objects
        after = page["data"][-1]["id"]


def _ids(objects: list[Any]) -> list[str]:
    return [obj["id"] if isinstance(obj, dict) else obj.id for obj in objects]


def _event_count(client: stripe.StripeClient) -> int:
    return len(_list_all(client, "/v1/events"))


# -- listing ------------------------------------------------------------------------------


def test_a_full_listing_of_10k_subscriptions_returns_each_once_newest_first(client, sandbox) -> None:
    made = sandbox.bulk_subscriptions(10_000, metadata={"project": "alpha"}, backdate_days=120)
    for sub_id in made["subscriptions"][::100]:  # 1% canceled behind our back
        sandbox.silent_cancel(sub_id)

    listed = _list_all(client, "/v1/subscriptions", status="all")

    ids = _ids(listed)
    assert len(ids) == 10_000
    assert set(ids) == set(made["subscriptions"])
    assert ids == made["subscriptions"][::-1]  # back-dated oldest first, so listed in reverse
    created = [sub["created"] for sub in listed]
    assert created == sorted(created, reverse=True)
    # No timing here (a shared machine): the listing's speed is measured by bench/reconciliation_full.py.
    assert len(_list_all(client, "/v1/subscriptions")) == 9_900  # default: not canceled
    assert len(_list_all(client, "/v1/subscriptions", status="canceled")) == 100
    assert len(_list_all(client, "/v1/subscriptions", status="ended")) == 100


def test_created_filters_bound_the_listing_and_combine_with_the_cursor(client, sandbox) -> None:
    sandbox.bulk_subscriptions(300, backdate_days=30)
    everything = _list_all(client, "/v1/subscriptions", status="all")
    cutoff = everything[150]["created"]

    def expect(keep: Any) -> list[str]:
        return [sub["id"] for sub in everything if keep(sub["created"])]

    assert _ids(_list_all(client, "/v1/subscriptions", status="all", created={"gte": cutoff})) == expect(
        lambda c: c >= cutoff
    )
    assert _ids(_list_all(client, "/v1/subscriptions", status="all", created={"gt": cutoff})) == expect(
        lambda c: c > cutoff
    )
    assert _ids(_list_all(client, "/v1/subscriptions", status="all", created={"lt": cutoff})) == expect(
        lambda c: c < cutoff
    )
    window = {"gte": everything[250]["created"], "lte": cutoff}
    assert _ids(_list_all(client, "/v1/subscriptions", status="all", created=window)) == expect(
        lambda c: window["gte"] <= c <= cutoff
    )
    assert _ids(_list_all(client, "/v1/subscriptions", status="all", created=str(cutoff))) == expect(
        lambda c: c == cutoff
    )
    # The SDK's own paging, with typed objects, agrees.
    sdk = client.v1.subscriptions.list(params={"status": "all", "limit": 100, "created": {"gte": cutoff}})
    assert [sub.id for sub in sdk.auto_paging_iter()] == expect(lambda c: c >= cutoff)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.list(params={"created": {"gte": "soon"}})
    assert info.value.param == "created[gte]"


def test_a_cursor_keeps_its_place_when_its_object_leaves_the_filter(client, sandbox) -> None:
    sandbox.bulk_subscriptions(30)
    first = _page(client, "/v1/subscriptions", limit=10)
    cursor = first["data"][-1]["id"]
    sandbox.silent_cancel(cursor)  # no longer in the default listing
    rest = _list_all(client, "/v1/subscriptions", starting_after=cursor)
    assert len(rest) == 20
    assert not set(_ids(rest)) & set(_ids(first["data"]))
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.list(params={"starting_after": "sub_doesnotexist"})
    assert info.value.code == "resource_missing"
    assert info.value.param == "starting_after"


def test_ending_before_pages_towards_the_newest(client, sandbox) -> None:
    made = sandbox.bulk_subscriptions(25)["subscriptions"]
    newest_first = made[::-1]
    page = _page(client, "/v1/subscriptions", limit=10, ending_before=newest_first[20])
    assert _ids(page["data"]) == newest_first[10:20]
    assert page["has_more"] is True
    page = _page(client, "/v1/subscriptions", limit=10, ending_before=newest_first[5])
    assert _ids(page["data"]) == newest_first[:5]
    assert page["has_more"] is False


def test_payment_intents_charges_customers_and_invoices_list_with_created_and_cursors(
    client, sandbox, paying_customer, monthly_price
) -> None:
    paid = sandbox.bulk_payments(230, metadata={"project": "alpha"}, backdate_days=10, customers=True)
    sandbox.bulk_payments(20, status="canceled")
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )

    intents = _list_all(client, "/v1/payment_intents")
    assert set(paid["payment_intents"]) <= set(_ids(intents))
    assert len(intents) == 230 + 20 + 1  # and the subscription's first payment
    charges = _list_all(client, "/v1/charges")
    assert set(_ids(charges)) == {*paid["charges"], client.v1.payment_intents.list().data[0].latest_charge}
    customers = _list_all(client, "/v1/customers")
    assert set(_ids(customers)) == {*paid["customers"], paying_customer.id}
    invoices = _list_all(client, "/v1/invoices")
    assert _ids(invoices) == [sub.latest_invoice]
    week_ago = sandbox.now() - 7 * DAY
    recent = _list_all(client, "/v1/charges", created={"gte": week_ago})
    assert 0 < len(recent) < len(charges)
    assert all(charge["created"] >= week_ago for charge in recent)
    by_intent = _page(client, "/v1/charges", payment_intent=paid["payment_intents"][3])
    assert _ids(by_intent["data"]) == [paid["charges"][3]]


def test_an_unknown_subscription_status_is_refused(client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.list(params={"status": "sleeping"})
    assert info.value.param == "status"


# -- bulk creation ------------------------------------------------------------------------


def test_bulk_objects_carry_the_metadata_and_shapes_and_make_no_event(client, sandbox, endpoint, receiver) -> None:
    subs = sandbox.bulk_subscriptions(
        3, metadata={"project": "alpha", "project_id": "7"}, user_prefix="u-", start=10, backdate_days=75
    )
    payments = sandbox.bulk_payments(2, metadata={"project": "alpha"}, customers=True, amount=2500)
    assert subs["users"] == ["u-10", "u-11", "u-12"]

    sub = client.v1.subscriptions.retrieve(subs["subscriptions"][1])
    assert sub.status == "active"
    assert sub.customer == subs["customers"][1]
    assert sub.metadata.to_dict() == {"project": "alpha", "project_id": "7", "user_id": "u-11"}
    item = sub["items"].data[0]
    assert item.price.id == subs["price"]
    assert item.current_period_start <= sandbox.now() < item.current_period_end  # renewed up to now
    customer = client.v1.customers.retrieve(subs["customers"][1])
    assert customer.metadata.to_dict() == {"project": "alpha", "project_id": "7", "user_id": "u-11"}
    intent = client.v1.payment_intents.retrieve(payments["payment_intents"][0])
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 2500, 2500)
    assert intent.latest_charge == payments["charges"][0]
    assert intent.customer == payments["customers"][0]
    assert intent.metadata.to_dict() == {"project": "alpha", "user_id": "user_0"}

    assert _list_all(client, "/v1/events") == []
    time.sleep(0.2)
    assert receiver.requests == []
    assert sandbox.deliveries() == []

    checker = Checker(stripe_examples())
    objects = [
        *_list_all(client, "/v1/subscriptions"),
        *_list_all(client, "/v1/customers"),
        *_list_all(client, "/v1/payment_intents"),
        *_list_all(client, "/v1/charges"),
    ]
    for obj in objects:
        checker.check_object(obj)
    assert sorted(checker.findings) == []


def test_bulk_statuses_and_an_existing_price(client, sandbox, monthly_price) -> None:
    canceled = sandbox.bulk_subscriptions(2, status="canceled", price=monthly_price.id)
    ending = sandbox.bulk_subscriptions(2, cancel_at_period_end=True, price=monthly_price.id)
    trialing = sandbox.bulk_subscriptions(1, status="trialing", trial_days=7)
    assert canceled["price"] == ending["price"] == monthly_price.id
    assert client.v1.subscriptions.retrieve(canceled["subscriptions"][0]).status == "canceled"
    sub = client.v1.subscriptions.retrieve(ending["subscriptions"][0])
    assert sub.cancel_at_period_end is True
    assert sub.cancel_at == sub["items"].data[0].current_period_end
    trial = client.v1.subscriptions.retrieve(trialing["subscriptions"][0])
    assert trial.status == "trialing"
    assert trial.trial_end == trial["items"].data[0].current_period_end == trial.created + 7 * DAY


@pytest.mark.parametrize(
    "body",
    [
        {"count": 0},
        {"count": 200_001},
        {"count": 1, "colour": "red"},
        {"count": 1, "status": "sleeping"},
        {"count": 1, "metadata": {"n": 1}},
        {"count": 1, "price": "price_missing"},
        {"count": 1, "status": "trialing", "backdate_days": 30},
    ],
)
def test_bulk_refuses_a_bad_request(sandbox, body) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        sandbox._call("POST", "/_sandbox/bulk/subscriptions", body)
    assert info.value.code in (400, 404)


def test_bulk_refuses_a_one_time_price(client, sandbox) -> None:
    product = client.v1.products.create(params={"name": "Once"})
    once = client.v1.prices.create(params={"product": product.id, "unit_amount": 900, "currency": "usd"})
    with pytest.raises(urllib.error.HTTPError) as info:
        sandbox.bulk_subscriptions(1, price=once.id)
    assert info.value.code == 400


# -- silent changes -----------------------------------------------------------------------


@pytest.fixture
def watched(client, sandbox, endpoint, receiver, paying_customer, monthly_price) -> dict[str, Any]:
    """A subscription and a one-time payment made through the API, their webhooks delivered;
    then the event count and delivery count a silent change must leave as they are."""
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )
    pi = client.v1.payment_intents.create(
        params={"amount": 4900, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    team = client.v1.prices.create(
        params={
            "product": monthly_price.product,
            "unit_amount": 4500,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    events = _event_count(client)
    wait_for(lambda: len(receiver.requests) >= events)
    return {"sub": sub, "pi": pi, "team": team, "events": events, "deliveries": len(sandbox.deliveries())}


def _assert_unheard(client: stripe.StripeClient, sandbox: SandboxProcess, watched: dict[str, Any]) -> None:
    assert _event_count(client) == watched["events"]
    time.sleep(0.1)
    assert len(sandbox.deliveries()) == watched["deliveries"]


def test_silent_reprice_changes_the_item_price(client, sandbox, watched) -> None:
    sub, team = watched["sub"], watched["team"]
    sandbox.silent_reprice(sub.id, team.id, quantity=3)
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert (item.id, item.price.id, item.plan.id, item.quantity) == (sub["items"].data[0].id, team.id, team.id, 3)
    _assert_unheard(client, sandbox, watched)


def test_silent_period_end_moves_on_the_items(client, sandbox, watched) -> None:
    sub = watched["sub"]
    moved = sub["items"].data[0].current_period_end + 5 * DAY
    sandbox.silent_move_period_end(sub.id, moved)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].current_period_end == moved
    _assert_unheard(client, sandbox, watched)


def test_silent_cancel_at_period_end_toggles(client, sandbox, watched) -> None:
    sub = watched["sub"]
    sandbox.silent_cancel_at_period_end(sub.id, True)
    now_on = client.v1.subscriptions.retrieve(sub.id)
    assert now_on.cancel_at_period_end is True
    assert now_on.cancel_at == sub["items"].data[0].current_period_end
    sandbox.silent_cancel_at_period_end(sub.id, False)
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is False
    _assert_unheard(client, sandbox, watched)


def test_silent_cancel_and_status(client, sandbox, watched) -> None:
    sub = watched["sub"]
    sandbox.silent_update(sub.id, {"status": "past_due"})
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    sandbox.silent_cancel(sub.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    _assert_unheard(client, sandbox, watched)


def test_silent_refund_and_payment_intent_changes(client, sandbox, watched) -> None:
    pi = watched["pi"]
    sandbox.silent_refund(pi.latest_charge, 900)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (900, False)
    sandbox.silent_payment_intent(pi.id, amount=5900)
    changed = client.v1.payment_intents.retrieve(pi.id)
    assert (changed.status, changed.amount, changed.amount_received) == ("succeeded", 5900, 5900)
    sandbox.silent_payment_intent(pi.id, status="canceled")
    canceled = client.v1.payment_intents.retrieve(pi.id)
    assert canceled.status == "canceled"
    assert canceled.canceled_at is not None
    _assert_unheard(client, sandbox, watched)


def test_silent_metadata_change_and_removal(client, sandbox, watched, paying_customer) -> None:
    sandbox.silent_update(paying_customer.id, {"metadata": {"project": "alpha", "user_id": "u1"}})
    sandbox.silent_metadata(paying_customer.id, {"user_id": "", "note": "moved"})
    assert client.v1.customers.retrieve(paying_customer.id).metadata.to_dict() == {"project": "alpha", "note": "moved"}
    sandbox.silent_metadata(paying_customer.id, "")
    assert client.v1.customers.retrieve(paying_customer.id).metadata.to_dict() == {}
    _assert_unheard(client, sandbox, watched)


def test_silent_customer_deletion_cancels_its_subscriptions(client, sandbox, watched, paying_customer) -> None:
    sandbox.silent_delete_customer(paying_customer.id)
    assert client.v1.customers.retrieve(paying_customer.id).get("deleted") is True
    assert client.v1.subscriptions.retrieve(watched["sub"].id).status == "canceled"
    assert paying_customer.id not in _ids(_list_all(client, "/v1/customers"))
    _assert_unheard(client, sandbox, watched)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("subscriptions/{sub}/price", {}),
        ("subscriptions/{sub}/price", {"price": "price_missing"}),
        ("subscriptions/{sub}/period_end", {"current_period_end": 5}),
        ("subscriptions/{sub}/cancel_at_period_end", {"cancel_at_period_end": "yes"}),
        ("payment_intents/{pi}", {"status": "finished"}),
        ("objects/{sub}/metadata", {}),
        ("objects/{sub}", {"id": "sub_other"}),
    ],
)
def test_a_bad_silent_change_is_refused_and_changes_nothing(client, sandbox, watched, path, body) -> None:
    before = client.v1.subscriptions.retrieve(watched["sub"].id).to_dict(recursive=True)
    with pytest.raises(urllib.error.HTTPError) as info:
        sandbox.silent(path.format(sub=watched["sub"].id, pi=watched["pi"].id), body)
    assert info.value.code in (400, 404)
    assert client.v1.subscriptions.retrieve(watched["sub"].id).to_dict(recursive=True) == before


# -- the Events API -----------------------------------------------------------------------


def test_events_by_created_gte_and_types_list_what_happened_and_no_silent_change(
    client, sandbox, paying_customer, monthly_price
) -> None:
    sandbox.advance_clock(DAY)
    since = sandbox.now()
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )
    client.v1.subscriptions.update(sub.id, params={"metadata": {"seen": "yes"}})
    sandbox.silent_cancel(sub.id)
    sandbox.silent_cancel_at_period_end(
        client.v1.subscriptions.create(
            params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
        ).id
    )

    recent = _list_all(client, "/v1/events", created={"gte": since})
    older = _list_all(client, "/v1/events", created={"lt": since})
    assert recent and older
    assert all(e["created"] >= since for e in recent)
    assert {e["id"] for e in recent}.isdisjoint(e["id"] for e in older)
    sub_events = _list_all(
        client,
        "/v1/events",
        created={"gte": since},
        types=["customer.subscription.created", "customer.subscription.updated"],
    )
    assert {e["data"]["object"]["id"] for e in sub_events} >= {sub.id}
    assert "customer.subscription.deleted" not in {e["type"] for e in recent}  # the cancel was silent
    assert [e["type"] for e in _list_all(client, "/v1/events", type="customer.subscription.*", created={"gte": since})]
    sdk = client.v1.events.list(params={"created": {"gte": since}, "limit": 3})
    assert [e.id for e in sdk.auto_paging_iter()] == _ids(recent)


# -- chaos: dropped deliveries ------------------------------------------------------------


def test_a_dropped_delivery_never_arrives_but_the_event_is_listed(
    client, sandbox, endpoint, receiver, paying_customer, monthly_price
) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )
    wait_for(lambda: len(receiver.events()) >= _event_count(client))
    sandbox.drop_deliveries(1, event_type="customer.subscription.updated")
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    client.v1.customers.update(paying_customer.id, params={"name": "Still delivered"})

    wait_for(lambda: "customer.updated" in receiver.event_types())
    updated = _list_all(client, "/v1/events", type="customer.subscription.updated")
    lost = updated[0]
    assert lost["data"]["object"]["cancel_at_period_end"] is True
    time.sleep(0.2)
    assert lost["id"] not in {e["id"] for e in receiver.events()}
    assert client.v1.events.retrieve(lost["id"]).pending_webhooks == 1
    assert _ids(_list_all(client, "/v1/events", delivery_success="false")) == [lost["id"]]
    assert lost["id"] not in _ids(_list_all(client, "/v1/events", delivery_success="true"))
    [dropped] = sandbox.deliveries(status="dropped")
    assert (dropped["event_id"], dropped["attempts"]) == (lost["id"], [])

    sandbox.redeliver(lost["id"])  # what a resend from the dashboard does
    wait_for(lambda: lost["id"] in {e["id"] for e in receiver.events()})
    wait_for(lambda: client.v1.events.retrieve(lost["id"]).pending_webhooks == 0)


def test_drop_probability_drops_every_delivery_and_the_rule_can_be_cleared(client, sandbox, endpoint, receiver) -> None:
    sandbox.configure(drop_probability=1.0)
    client.v1.customers.create(params={"email": "a@example.com"})
    sandbox.configure(drop_probability=0.0)
    rule = sandbox.drop_deliveries(5)
    assert sandbox._call("GET", "/_sandbox/chaos/drop")["drops"][0]["id"] == rule
    sandbox._call("DELETE", "/_sandbox/chaos/drop")
    client.v1.customers.create(params={"email": "b@example.com"})
    wait_for(lambda: len(receiver.events()) == 1)
    assert receiver.events()[0]["data"]["object"]["email"] == "b@example.com"
    assert [d["status"] for d in sandbox.deliveries()] == ["dropped", "succeeded"]
    with pytest.raises(urllib.error.HTTPError) as info:
        sandbox.configure(drop_probability=2)
    assert info.value.code == 400


# -- faults for a while -------------------------------------------------------------------


def test_429_with_retry_after_for_some_seconds_on_chosen_routes(client, sandbox) -> None:
    sandbox.bulk_subscriptions(5)
    sandbox.set_fault(["/v1/subscriptions", "/v1/charges"], method="GET", status=429, retry_after=1, duration_s=1.0)
    for call in (client.v1.subscriptions.list, client.v1.charges.list):
        with pytest.raises(stripe.RateLimitError) as info:
            call()
        assert info.value.headers is not None
        assert info.value.headers["Retry-After"] == "1"
    assert client.v1.customers.list().data  # another route answers
    time.sleep(1.1)
    assert len(client.v1.subscriptions.list().data) == 5
    assert sandbox.faults() == []
    assert sandbox.request_stats()["faulted"] == {"429": 2}


def test_500_after_some_pages_for_n_requests_and_a_listing_that_retries_loses_nothing(client, sandbox) -> None:
    made = sandbox.bulk_subscriptions(500)["subscriptions"]
    sandbox.reset_request_stats()
    sandbox.set_fault("/v1/subscriptions", method="GET", status=500, count=2, start_after=2)
    sandbox.set_fault("/v1/subscriptions", method="GET", status=429, count=2, retry_after=0, start_after=4)
    listed: list[str] = []
    after: str | None = None
    failures: list[int] = []
    while True:
        try:
            page = _page(client, "/v1/subscriptions", limit=100, **({"starting_after": after} if after else {}))
        except stripe.StripeError as error:
            failures.append(error.http_status or 0)
            continue
        listed += _ids(page["data"])
        if not page["has_more"]:
            break
        after = listed[-1]
    assert listed == made[::-1]  # nothing lost, nothing twice
    assert sorted(failures) == [429, 429, 500, 500]
    stats = sandbox.request_stats()
    assert stats["by_route"] == {"GET /v1/subscriptions": 5 + 4}
    assert stats["faulted"] == {"500": 2, "429": 2}


def test_the_sdk_retries_a_500_during_a_listing(sandbox) -> None:
    sandbox.bulk_subscriptions(150)
    retrying = stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.base_url}, max_network_retries=2)
    sandbox.set_fault("/v1/subscriptions", method="GET", status=500, count=1, start_after=1)
    listed = retrying.v1.subscriptions.list(params={"limit": 100}).auto_paging_iter()
    assert len(list(listed)) == 150


@pytest.mark.parametrize(
    "spec",
    [
        {"status": 429, "duration_s": 0},
        {"status": 429, "start_after": -1},
        {"status": 500, "count": 0},
        {"status": 500, "path_prefix": []},
    ],
)
def test_a_bad_fault_is_refused(sandbox, spec) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        sandbox._call("POST", "/_sandbox/faults", spec)
    assert info.value.code == 400


# -- persistence keeps the list order -----------------------------------------------------


def test_list_order_and_cursors_survive_a_restart(tmp_path) -> None:
    with SandboxProcess.start(data_dir=tmp_path) as first:
        client = stripe.StripeClient(first.api_key, base_addresses={"api": first.base_url}, max_network_retries=0)
        recent = client.v1.customers.create(params={"email": "new@example.com"})
        old = first.bulk_subscriptions(20, backdate_days=60)  # older than the customer above
        first.silent_delete_customer(old["customers"][10])
        before = _list_all(client, "/v1/customers")
        assert before[0]["id"] == recent.id
        state = tmp_path / "stripe_sandbox_state.json"
        wait_for(lambda: state.exists() and old["customers"][0] in state.read_text())
    with SandboxProcess.start(data_dir=tmp_path) as second:
        client = stripe.StripeClient(second.api_key, base_addresses={"api": second.base_url}, max_network_retries=0)
        assert _list_all(client, "/v1/customers") == before
        # A cursor on the deleted customer's stub still has its place.
        rest = _page(client, "/v1/customers", limit=100, starting_after=old["customers"][10])
        assert _ids(rest["data"]) == old["customers"][:10][::-1]
