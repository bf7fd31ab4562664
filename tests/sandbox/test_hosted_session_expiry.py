"""Hosted sessions for invoices: ``price_data`` lines, ``expires_at``, expiry (API, clock, a late
visit), ``after_expiration.recovery`` and the recovered session paid on the hosted page."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
import stripe

from .conftest import Receiver, form_post, http_get, wait_for
from .sdk_types import Checker
from .test_shape_contract import stripe_examples

DAY = 86400
SUCCESS = "http://127.0.0.1:9/paid?session={CHECKOUT_SESSION_ID}"
CANCEL = "http://127.0.0.1:9/back"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def get_no_redirect(url: str) -> tuple[int, str | None, str]:
    """GET like a browser's first request: (status, Location, body)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.headers.get("Location"), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location"), error.read().decode()


def price_data_line(unit_amount: int = 1305, quantity: int = 2, **product: Any) -> dict[str, Any]:
    return {
        "price_data": {
            "currency": "usd",
            "unit_amount": unit_amount,
            "product_data": {"name": "Annual report", **product},
        },
        "quantity": quantity,
    }


def invoice_session(client: stripe.StripeClient, **extra: Any) -> Any:
    """A session as the service creates one for an invoice (Any: tests read its optional fields freely)."""
    params: Any = {
        "mode": "payment",
        "line_items": [price_data_line()],
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "metadata": {"project": "alpha", "invoice_id": "17", "checkout_session": "42"},
        "after_expiration": {"recovery": {"enabled": True}},
        **extra,
    }
    return client.v1.checkout.sessions.create(params=params)


def catalog_counts(client: stripe.StripeClient) -> tuple[int, int]:
    return (
        len(client.v1.products.list(params={"limit": 100}).data),
        len(client.v1.prices.list(params={"limit": 100}).data),
    )


# -- price_data lines and totals ----------------------------------------------------------


def test_price_data_lines_are_ad_hoc_prices_and_the_session_adds_them_up(client, sandbox) -> None:
    product = client.v1.products.create(params={"name": "Seats"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                price_data_line(1305, 2, description="FY 2026, bound", metadata={"line": "1"}),
                {"price_data": {"currency": "USD", "unit_amount": 250, "product": product.id}, "quantity": 3},
            ],
            "success_url": SUCCESS,
        }
    )
    assert (session.amount_subtotal, session.amount_total, session.currency) == (3360, 3360, "usd")
    assert session.expires_at == session.created + DAY  # Stripe's default
    assert session.after_expiration is None
    assert session.recovered_from is None
    items = client.v1.checkout.sessions.line_items.list(session.id).data
    assert [(i.description, i.quantity, i.amount_subtotal, i.amount_total) for i in items] == [
        ("Annual report", 2, 2610, 2610),
        ("Seats", 3, 750, 750),
    ]
    first, second = (item.price for item in items)
    # An inline price is a real Price that cannot be reused: inactive, one-time, its own product.
    assert (first.active, first.type, first.unit_amount, first.currency) == (False, "one_time", 1305, "usd")
    assert second.product == product.id
    inline_product = client.v1.products.retrieve(first.product)
    assert inline_product.name == "Annual report"
    assert inline_product.description == "FY 2026, bound"
    assert inline_product.metadata.to_dict() == {"line": "1"}
    assert client.v1.prices.retrieve(first.id).active is False
    expanded = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert [i.price.id for i in expanded.line_items.data] == [first.id, second.id]


def test_after_expiration_is_in_stripe_shape_from_creation(client) -> None:
    session = invoice_session(client, after_expiration={"recovery": {"enabled": True, "allow_promotion_codes": True}})
    assert session.after_expiration.recovery.to_dict() == {
        "allow_promotion_codes": True,
        "enabled": True,
        "expires_at": None,
        "url": None,
    }
    off = invoice_session(client, after_expiration={"recovery": {"enabled": False}})
    assert off.after_expiration.recovery.enabled is False
    assert off.after_expiration.recovery.allow_promotion_codes is False


def _line(**price_data: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"currency": "usd", "unit_amount": 500, "product_data": {"name": "Thing"}}
    data.update(price_data)
    return {"price_data": {k: v for k, v in data.items() if v is not None}, "quantity": 1}


PD = "line_items[0][price_data]"
REFUSED = [
    pytest.param([{"price": "{price}", **_line()}], "line_items[0]", None, "only specify one", id="price-and-data"),
    pytest.param([{"quantity": 1}], "line_items[0]", "parameter_missing", "either price or price_data", id="neither"),
    pytest.param([_line(unit_amount=-1)], f"{PD}[unit_amount]", None, "non-negative integer", id="negative"),
    pytest.param(
        [_line(unit_amount="12.5")], f"{PD}[unit_amount]", "parameter_invalid_integer", "Invalid integer", id="decimal"
    ),
    pytest.param([_line(unit_amount=None)], f"{PD}[unit_amount]", "parameter_missing", "Missing", id="no-amount"),
    pytest.param([_line(currency="usdx")], f"{PD}[currency]", None, "Invalid currency: usdx", id="bad-currency"),
    pytest.param([_line(currency=None)], f"{PD}[currency]", "parameter_missing", "Missing", id="no-currency"),
    pytest.param(
        [_line(product_data={"description": "no name"})],
        f"{PD}[product_data][name]",
        "parameter_missing",
        "Missing required param",
        id="no-product-name",
    ),
    pytest.param(
        [_line(product_data=None)], f"{PD}[product_data]", "parameter_missing", "product_data", id="no-product"
    ),
    pytest.param(
        [_line(), _line(currency="eur")], "line_items", None, "same currency", id="two-currencies-second-line"
    ),
    pytest.param(
        [_line(recurring={"interval": "month"})], "line_items", None, "recurring prices", id="recurring-in-payment"
    ),
    pytest.param(
        [_line(recurring={"interval": "fortnight"})], f"{PD}[recurring][interval]", None, "interval", id="interval"
    ),
    pytest.param([_line(unit_amount=0)], None, None, "at least $0.50 usd", id="below-minimum-charge"),
    pytest.param([_line(colour="red")], f"{PD}[colour]", "parameter_unknown", "unknown parameter", id="unknown-key"),
]


@pytest.mark.parametrize(("lines", "param", "code", "message"), REFUSED)
def test_invalid_lines_are_refused_as_stripe_does_and_create_nothing(client, lines, param, code, message) -> None:
    price = client.v1.prices.create(params={"currency": "usd", "unit_amount": 100, "product_data": {"name": "P"}})
    lines = [{**line, "price": price.id} if line.get("price") == "{price}" else line for line in lines]
    before = catalog_counts(client)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.checkout.sessions.create(params={"mode": "payment", "line_items": lines, "success_url": SUCCESS})
    error = refused.value
    assert error.http_status == 400
    assert error.param == param
    assert error.code == code
    assert message in str(error.user_message)
    # A refused request creates no inline product or price, not even for the lines that were valid.
    assert catalog_counts(client) == before
    assert client.v1.checkout.sessions.list().data == []


def test_recurring_price_data_is_accepted_in_subscription_mode(client) -> None:
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [_line(recurring={"interval": "month"})],
            "success_url": SUCCESS,
        }
    )
    item = client.v1.checkout.sessions.line_items.list(session.id).data[0]
    assert item.price.type == "recurring"
    assert item.price.recurring.interval == "month"


# -- expires_at ------------------------------------------------------------------------------


def test_expires_at_must_be_30_minutes_to_24_hours_away(client, sandbox) -> None:
    now = sandbox.now()
    for expires_at, words in ((now + 1800 - 5, "at least 30 minutes"), (now + DAY + 5, "less than 24 hours")):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            invoice_session(client, expires_at=expires_at)
        assert refused.value.param == "expires_at"
        assert f"The `expires_at` timestamp must be {words} from Checkout Session creation." == (
            refused.value.user_message
        )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        invoice_session(client, expires_at="tomorrow")
    assert refused.value.code == "parameter_invalid_integer"
    assert client.v1.checkout.sessions.list().data == []
    soon = invoice_session(client, expires_at=now + 1800 + 5)
    late = invoice_session(client, expires_at=now + DAY - 5)
    assert (soon.expires_at, late.expires_at) == (now + 1805, now + DAY - 5)


# -- expiry ------------------------------------------------------------------------------------


def test_expire_endpoint_expires_an_open_session_once(client, sandbox, endpoint, receiver: Receiver) -> None:
    session = invoice_session(client)
    before = sandbox.now()
    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url, expired.payment_status) == ("expired", None, "unpaid")
    recovery = expired.after_expiration.recovery
    assert recovery.enabled is True
    assert recovery.url.startswith(sandbox.base_url + "/checkout/recover/")
    assert before + 30 * DAY <= recovery.expires_at <= sandbox.now() + 30 * DAY
    event = wait_for(lambda: [e for e in receiver.events() if e["type"] == "checkout.session.expired"])[0]
    assert event["data"]["object"]["id"] == session.id
    assert event["data"]["object"]["after_expiration"]["recovery"]["url"] == recovery.url
    assert event["request"]["id"] is not None  # an API request did it
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.checkout.sessions.expire(session.id)
    assert again.value.http_status == 400
    assert again.value.user_message == 'Only Checkout Sessions with a status in ["open"] can be expired.'
    assert len(client.v1.events.list(params={"type": "checkout.session.expired"}).data) == 1
    assert http_get(session.url)[0] == 409  # the hosted page is gone


def test_a_completed_session_cannot_be_expired(client) -> None:
    session = invoice_session(client)
    assert form_post(session.url + "/pay", {"card_number": "4242424242424242"})[0] == 303
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.checkout.sessions.expire(session.id)
    assert "can be expired" in str(refused.value.user_message)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"


def test_a_session_without_recovery_expires_without_a_recovery_url(client) -> None:
    session = invoice_session(client, after_expiration=None)
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    assert expired.after_expiration is None


def test_the_clock_expires_open_sessions_at_their_expires_at(client, sandbox, endpoint, receiver) -> None:
    now = sandbox.now()
    short = invoice_session(client, expires_at=now + 3600)
    default = invoice_session(client)
    paid = invoice_session(client, expires_at=now + 3600)
    form_post(paid.url + "/pay", {"card_number": "4242424242424242"})
    result = sandbox.advance_clock(2 * 3600)
    assert result["transitions"] == 1
    short_now = client.v1.checkout.sessions.retrieve(short.id)
    assert short_now.status == "expired"
    # The recovery URL's 30 days run from the moment it expired, not from the advance's target.
    assert short_now.after_expiration.recovery.expires_at == short.expires_at + 30 * DAY
    assert client.v1.checkout.sessions.retrieve(default.id).status == "open"
    assert client.v1.checkout.sessions.retrieve(paid.id).status == "complete"
    sandbox.advance_clock(DAY)
    assert client.v1.checkout.sessions.retrieve(default.id).status == "expired"
    wait_for(lambda: len([e for e in receiver.events() if e["type"] == "checkout.session.expired"]) == 2)
    expired_events = [e for e in receiver.events() if e["type"] == "checkout.session.expired"]
    assert sorted(e["data"]["object"]["id"] for e in expired_events) == sorted([short.id, default.id])
    assert all(e["request"]["id"] is None for e in expired_events)  # the clock did it, not a request
    assert [d["status"] for d in sandbox.deliveries(event_type="checkout.session.expired")] == ["succeeded"] * 2


def test_a_late_visit_to_the_page_expires_the_session(client, sandbox) -> None:
    # Real time moves the sandbox clock too: a session past expires_at is never payable.
    session = invoice_session(client)
    sandbox.silent(f"objects/{session.id}", {"expires_at": sandbox.now() - 1})
    assert form_post(session.url + "/pay", {"card_number": "4242424242424242"})[0] == 409
    after = client.v1.checkout.sessions.retrieve(session.id)
    assert after.status == "expired"
    assert after.after_expiration.recovery.url is not None
    assert client.v1.events.list(params={"type": "checkout.session.expired"}).data[0].data.object.id == session.id


def test_expiry_cancels_the_intent_a_declined_payment_left(client, sandbox) -> None:
    session = invoice_session(client)
    assert form_post(session.url + "/pay", {"card_number": "4000000000009995"})[0] == 402
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    assert client.v1.payment_intents.retrieve(pi_id).status == "requires_payment_method"
    client.v1.checkout.sessions.expire(session.id)
    pi = client.v1.payment_intents.retrieve(pi_id)
    assert (pi.status, pi.cancellation_reason) == ("canceled", "automatic")
    assert client.v1.events.list(params={"type": "payment_intent.canceled"}).data[0].data.object.id == pi_id


# -- recovery ----------------------------------------------------------------------------------


def test_the_recovery_url_opens_a_copy_that_can_be_paid(client, sandbox, endpoint, receiver) -> None:
    customer = client.v1.customers.create(params={"email": "finance@example.com"})
    old = invoice_session(
        client,
        customer=customer.id,
        client_reference_id="user_7",
        line_items=[price_data_line(1305, 2), price_data_line(100, 1, description="Postage")],
        after_expiration={"recovery": {"enabled": True, "allow_promotion_codes": True}},
        payment_intent_data={"metadata": {"invoice_id": "17"}},
    )
    sandbox.advance_clock(DAY + 60)
    expired = client.v1.checkout.sessions.retrieve(old.id)
    recovery_url = expired.after_expiration.recovery.url

    status, location, _ = get_no_redirect(recovery_url)
    assert status == 302
    new = client.v1.checkout.sessions.list(params={"status": "open"}).data[0]
    assert location == new.url
    assert new.id != old.id
    assert new.recovered_from == old.id
    for name in ("mode", "customer", "client_reference_id", "success_url", "cancel_url", "currency", "amount_total"):
        assert new[name] == old[name], name
    assert new.metadata.to_dict() == {"project": "alpha", "invoice_id": "17", "checkout_session": "42"}
    assert new.allow_promotion_codes is True
    now = sandbox.now()
    assert now + DAY - 5 <= new.expires_at <= now + DAY  # a fresh 24 hours
    assert new.after_expiration.recovery.url is None  # it can be recovered in its turn, once expired
    old_items = client.v1.checkout.sessions.line_items.list(old.id).data
    new_items = client.v1.checkout.sessions.line_items.list(new.id).data
    assert [(i.description, i.quantity, i.amount_total, i.price.id) for i in new_items] == [
        (i.description, i.quantity, i.amount_total, i.price.id) for i in old_items
    ]
    assert {i.id for i in new_items}.isdisjoint({i.id for i in old_items})

    # A second click (or a mail scanner's) opens the same session, not another one.
    assert get_no_redirect(recovery_url)[:2] == (302, new.url)
    assert len(client.v1.checkout.sessions.list(params={"status": "open"}).data) == 1

    status, page = http_get(location)  # the recovered session's hosted page
    assert status == 200
    assert "26.10 USD" in page
    status, _, done = form_post(new.url + "/pay", {"card_number": "4242424242424242"})
    assert (status, done) == (303, f"http://127.0.0.1:9/paid?session={new.id}")
    paid = client.v1.checkout.sessions.retrieve(new.id)
    assert (paid.status, paid.payment_status, paid.customer) == ("complete", "paid", customer.id)
    assert client.v1.payment_intents.retrieve(paid.payment_intent).metadata.to_dict() == {"invoice_id": "17"}
    assert client.v1.payment_intents.retrieve(paid.payment_intent).amount == 2710

    completed = wait_for(lambda: [e for e in receiver.events() if e["type"] == "checkout.session.completed"])[0]
    session_object = completed["data"]["object"]
    assert session_object["id"] == new.id
    assert session_object["recovered_from"] == old.id
    assert session_object["metadata"] == {"project": "alpha", "invoice_id": "17", "checkout_session": "42"}
    # The link is spent once its session is paid.
    assert get_no_redirect(recovery_url)[0] == 410
    assert client.v1.checkout.sessions.retrieve(old.id).status == "expired"


def test_a_recovered_session_that_expires_again_lets_the_link_open_another(client, sandbox) -> None:
    old = invoice_session(client)
    recovery_url = client.v1.checkout.sessions.expire(old.id).after_expiration.recovery.url
    first = get_no_redirect(recovery_url)[1]
    sandbox.advance_clock(DAY + 60)
    second = get_no_redirect(recovery_url)[1]
    assert first is not None and second is not None and first != second
    sessions = client.v1.checkout.sessions.list(params={"limit": 10}).data
    assert [s.recovered_from for s in sessions] == [old.id, old.id, None]


def test_the_recovery_url_expires_after_30_days(client, sandbox) -> None:
    old = invoice_session(client)
    recovery = client.v1.checkout.sessions.expire(old.id).after_expiration.recovery
    sandbox.advance_clock(to=recovery.expires_at + 1)
    status, location, page = get_no_redirect(recovery.url)
    assert (status, location) == (410, None)
    assert "recovery link has expired" in page
    assert len(client.v1.checkout.sessions.list().data) == 1  # nothing was created


def test_an_unknown_recovery_url_is_404(sandbox) -> None:
    assert get_no_redirect(sandbox.base_url + "/checkout/recover/rcv_nothing")[0] == 404


def test_expired_and_recovered_sessions_match_the_sdk_types(client, sandbox) -> None:
    old = invoice_session(client, after_expiration={"recovery": {"enabled": True, "allow_promotion_codes": True}})
    client.v1.checkout.sessions.expire(old.id)
    url = client.v1.checkout.sessions.retrieve(old.id).after_expiration.recovery.url
    location = get_no_redirect(url)[1]
    assert location is not None
    new_id = location.rsplit("/", 1)[1]
    checker = Checker(stripe_examples())
    for session_id in (old.id, new_id):
        checker.check_object(client.v1.checkout.sessions.retrieve(session_id).to_dict(recursive=True))
    for event in client.v1.events.list().data:
        checker.check_object(event.data.object.to_dict(recursive=True), where=f"event[{event.type}]")
    assert sorted(checker.findings) == []
