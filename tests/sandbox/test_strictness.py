"""The sandbox refuses what Stripe refuses: unknown parameters, other accounts' keys, and it
answers errors in Stripe's shape (no ``null`` code/param, codes from Stripe's list)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
import stripe

from stripe_sandbox.testing import SandboxProcess

from .sdk_types import hints, literal_values


def _raw_post(sandbox: SandboxProcess, path: str, fields: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        sandbox.base_url + path,
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _unknown(body: dict[str, Any], name: str) -> None:
    assert body == {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_unknown",
            "param": name,
            "message": f"Received unknown parameter: {name}",
        }
    }


@pytest.mark.parametrize(
    ("path", "fields", "unknown"),
    [
        ("/v1/customers", [("email", "a@example.com"), ("colour", "red")], "colour"),
        (
            "/v1/customers",
            [("invoice_settings[default_payment_method]", ""), ("invoice_settings[x]", "1")],
            "invoice_settings[x]",
        ),
        (
            "/v1/checkout/sessions",
            [
                ("mode", "payment"),
                ("success_url", "http://127.0.0.1:9/"),
                ("line_items[0][price_data][currency]", "usd"),
                ("line_items[0][price_data][unit_amount]", "100"),
                ("line_items[0][price_data][product_data][name]", "x"),
                ("line_items[0][price_data][colour]", "red"),
            ],
            "line_items[0][price_data][colour]",
        ),
        (
            "/v1/subscriptions",
            [("customer", "cus_x"), ("items[0][price]", "p"), ("items[0][colour]", "r")],
            "items[0][colour]",
        ),
        (
            "/v1/prices",
            [("expand[0]", "product"), ("metadata[0]", "y"), ("currency", "usd"), ("product[id]", "1")],
            "product[id]",
        ),
    ],
)
def test_an_unknown_parameter_is_400_parameter_unknown(sandbox, path, fields, unknown) -> None:
    status, body = _raw_post(sandbox, path, fields)
    assert status == 400
    _unknown(body, unknown)


def test_an_unknown_parameter_changes_nothing(client, sandbox) -> None:
    status, _ = _raw_post(sandbox, "/v1/customers", [("email", "a@example.com"), ("colour", "red")])
    assert status == 400
    assert client.v1.customers.list().data == []


def test_an_unknown_query_parameter_of_a_list_is_refused(client) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.list(params={"colour": "red"})
    assert info.value.http_status == 400
    assert info.value.code == "parameter_unknown"
    assert info.value.param == "colour"


def test_free_form_metadata_and_expand_are_accepted(client) -> None:
    customer = client.v1.customers.create(
        params={"metadata": {"any key": "v", "another": "w"}, "expand": ["invoice_settings.default_payment_method"]}
    )
    assert customer.metadata.to_dict() == {"any key": "v", "another": "w"}


def test_another_accounts_test_key_is_401(sandbox) -> None:
    other = stripe.StripeClient(
        "sk_test_another_account_000000000000000", base_addresses={"api": sandbox.base_url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError) as info:
        other.v1.customers.list()
    assert info.value.http_status == 401
    assert info.value.json_body == {
        "error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_anot" + "*" * 27}
    }


def test_error_bodies_leave_out_code_and_param_when_they_do_not_apply(sandbox) -> None:
    status, body = _raw_post(sandbox, "/v1/refunds", [])
    assert status == 400
    assert set(body["error"]) == {"type", "message"}


def _stripe_error_codes() -> set[str]:
    """Stripe's list of error codes, as the SDK's ``Literal`` of an error object's ``code``."""
    return literal_values(hints(stripe.SetupIntent.LastSetupError)["code"])


def test_a_bad_integer_is_parameter_invalid_integer_from_stripes_list(sandbox) -> None:
    status, body = _raw_post(sandbox, "/v1/payment_intents", [("amount", "ten"), ("currency", "usd")])
    assert status == 400
    assert body["error"]["code"] == "parameter_invalid_integer"
    assert body["error"]["param"] == "amount"
    assert body["error"]["code"] in _stripe_error_codes()


def test_every_error_code_the_sandbox_uses_is_one_of_stripes() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "stripe_sandbox"
    used = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
                used.add(node.value.value)
    assert used, "no error codes found"
    assert used - _stripe_error_codes() == set()


def test_a_declined_test_token_is_converted_once(client) -> None:
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_intents.create(
            params={"amount": 700, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": True}
        )
    body: Any = info.value.json_body
    pi = client.v1.payment_intents.retrieve(body["error"]["payment_intent"]["id"])
    charge = client.v1.charges.retrieve(str(pi.latest_charge))
    assert pi.last_payment_error is not None
    assert pi.payment_method == charge.payment_method == pi.last_payment_error.payment_method.id
    assert len(client.v1.payment_methods.list(params={"type": "card"}).data) == 1


def test_a_checkout_session_is_in_this_api_versions_shape(client, monthly_price) -> None:
    session = client.v1.checkout.sessions.create(
        params={"mode": "subscription", "line_items": [{"price": monthly_price.id}], "success_url": "http://x/"}
    )
    raw = session.to_dict(recursive=True)
    assert raw["ui_mode"] == "hosted_page"
    assert raw["tax_id_collection"] == {"enabled": False, "required": "never"}
    assert "disabled_reason" not in raw["automatic_tax"]


def test_a_refund_leaves_out_what_stripe_leaves_out(client) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 300, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    refund = client.v1.refunds.create(params={"payment_intent": pi.id}).to_dict()
    charge = client.v1.charges.retrieve(str(pi.latest_charge)).to_dict()
    absent = {"description", "failure_reason", "failure_balance_transaction", "instructions_email", "next_action"}
    assert absent.isdisjoint(refund)
    assert {"transfer", "radar_options"}.isdisjoint(charge)


def test_a_refused_unknown_parameter_does_not_use_up_the_idempotency_key(client, sandbox) -> None:
    # Stripe saves no idempotent result for a request whose parameters fail validation.
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        sandbox.base_url + "/v1/customers",
        data=b"email=a%40example.com&colour=red",
        headers={"Authorization": f"Bearer {sandbox.api_key}", "Idempotency-Key": "k-unknown"},
    )
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - 127.0.0.1 only
    assert raw.value.code == 400
    customer = client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k-unknown"})
    assert customer.email == "a@example.com"


def test_an_invoice_has_no_threshold_reason(client, paying_customer, monthly_price) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice)).to_dict()
    assert "threshold_reason" not in invoice


def test_a_fault_answer_leaves_out_code_and_param(sandbox) -> None:
    sandbox.set_fault("/v1/customers", method="POST", status=500, count=1)
    status, body = _raw_post(sandbox, "/v1/customers", [("email", "a@example.com")])
    assert status == 500
    assert body == {"error": {"type": "api_error", "message": "An error occurred (sandbox fault)."}}
