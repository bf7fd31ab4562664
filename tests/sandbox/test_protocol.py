"""Auth, errors, idempotency, pagination, filters, expand: the protocol the SDK relies on."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import stripe

from stripe_sandbox import API_VERSION


def test_missing_and_malformed_keys_are_401(sandbox) -> None:
    # Only the sandbox's own key is valid, as only an account's own keys are at Stripe.
    for key in ("pk_test_abc", "sk_live_abc", "sk_test_", "sk_test_some_other_account_0000000000000"):
        bad = stripe.StripeClient(key, base_addresses={"api": sandbox.base_url}, max_network_retries=0)
        with pytest.raises(stripe.AuthenticationError) as info:
            bad.v1.customers.list()
        assert info.value.http_status == 401
    request = urllib.request.Request(sandbox.base_url + "/v1/customers")  # noqa: S310 - 127.0.0.1 only
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - 127.0.0.1 only
    assert raw.value.code == 401
    assert raw.value.headers["Request-Id"].startswith("req_")


def test_missing_resource_is_404_resource_missing(client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve("cus_nope")
    assert info.value.http_status == 404
    assert info.value.code == "resource_missing"
    assert info.value.param == "id"
    assert info.value.request_id is not None
    assert info.value.request_id.startswith("req_")


def test_unknown_route_uses_stripe_error_shape(sandbox) -> None:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        sandbox.base_url + "/v1/nothing_here", headers={"Authorization": f"Bearer {sandbox.api_key}"}
    )
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - 127.0.0.1 only
    assert raw.value.code == 404
    assert b'"invalid_request_error"' in raw.value.read()


def test_missing_param_is_400_with_param(client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.prices.create(params={"currency": "usd", "unit_amount": 100})
    assert info.value.http_status == 400
    assert info.value.param == "product"


def test_idempotency_same_key_same_response(client) -> None:
    first = client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    second = client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    assert first.id == second.id
    assert len(client.v1.customers.list().data) == 1
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"


def test_idempotency_same_key_other_params_is_400(client) -> None:
    client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k2"})
    with pytest.raises(stripe.IdempotencyError) as info:
        client.v1.customers.create(params={"email": "b@example.com"}, options={"idempotency_key": "k2"})
    assert info.value.http_status == 400
    assert len(client.v1.customers.list().data) == 1


def test_pagination_walks_every_object_once(client) -> None:
    created = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(7)]
    page = client.v1.customers.list(params={"limit": 3})
    assert page.has_more is True
    assert [c.id for c in page.data] == created[::-1][:3]
    seen = [c.id for c in client.v1.customers.list(params={"limit": 3}).auto_paging_iter()]
    assert seen == created[::-1]
    before = client.v1.customers.list(params={"limit": 2, "ending_before": created[3]})
    assert [c.id for c in before.data] == [created[5], created[4]]
    last = client.v1.customers.list(params={"limit": 3, "starting_after": created[1]})
    assert [c.id for c in last.data] == [created[0]]
    assert last.has_more is False


def test_created_filters(client, sandbox) -> None:
    old = client.v1.customers.create(params={"name": "old"})
    sandbox.advance_clock(100)
    new = client.v1.customers.create(params={"name": "new"})
    assert new.created >= old.created + 100
    gte = client.v1.customers.list(params={"created": {"gte": new.created}})
    assert [c.id for c in gte.data] == [new.id]
    lt = client.v1.customers.list(params={"created": {"lt": new.created}})
    assert [c.id for c in lt.data] == [old.id]


def test_expand_nested_and_in_lists(client, monthly_price) -> None:
    price = client.v1.prices.retrieve(monthly_price.id, params={"expand": ["product"]})
    assert price.product.name == "Pro plan"
    client.v1.products.update(price.product.id, params={"default_price": price.id})
    products = client.v1.products.list(params={"limit": 100, "expand": ["data.default_price"]})
    assert products.data[0].default_price.unit_amount == 1500


def test_metadata_merge_and_unset(client) -> None:
    customer = client.v1.customers.create(params={"metadata": {"a": "1", "b": "2"}})
    updated = client.v1.customers.update(customer.id, params={"metadata": {"b": "", "c": "3"}})
    assert updated.metadata.to_dict() == {"a": "1", "c": "3"}


def test_events_carry_api_version_and_request(client) -> None:
    customer = client.v1.customers.create(params={"email": "e@example.com"}, options={"idempotency_key": "ev-1"})
    events = client.v1.events.list(params={"type": "customer.created"}).data
    assert len(events) == 1
    event = events[0]
    assert event.api_version == API_VERSION
    assert event.livemode is False
    assert event.data.object.id == customer.id
    assert event["request"]["idempotency_key"] == "ev-1"
    assert event["request"]["id"] == customer.last_response.request_id
    assert client.v1.events.retrieve(event.id).id == event.id


def test_update_event_has_previous_attributes(client) -> None:
    customer = client.v1.customers.create(params={"email": "old@example.com"})
    client.v1.customers.update(customer.id, params={"email": "new@example.com"})
    event = client.v1.events.list(params={"type": "customer.updated"}).data[0]
    assert event.data.previous_attributes.to_dict() == {"email": "old@example.com"}
    assert event.data.object.email == "new@example.com"


def test_event_type_wildcard_and_created_filter(client) -> None:
    client.v1.customers.create()
    client.v1.products.create(params={"name": "x"})
    types = {e.type for e in client.v1.events.list(params={"type": "customer.*"}).data}
    assert types == {"customer.created"}
