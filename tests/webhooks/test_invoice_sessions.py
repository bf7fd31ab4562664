"""checkout.session.* of invoices' hosted sessions: signed deliveries through the endpoint, real handlers.

completed pays the invoice and turns each line with a feature code into a purchase (the feature's
check says active); expired stores Stripe's recovery URL; a session Stripe opened from a recovery URL
(`recovered_from`) pays the same invoice through a new row; duplicates and late events change
nothing; a refund of the payment ends the purchases. The last tests take their events from the
sandbox, so that the shapes are Stripe's, not ours.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
import requests
from django.test import Client

from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
from apps.entitlements.models import Purchase
from apps.entitlements.selectors import entitlement_check
from apps.webhooks.models import ProcessorEvent
from apps.webhooks.processing import event_process
from stripe_sandbox.testing import SandboxProcess
from tests.checkout.conftest import pay_on_hosted_page
from tests.conftest import Tenant, committed
from tests.factories import CheckoutSessionFactory, invoice_with_lines
from tests.webhooks.conftest import deliver, make_event

pytestmark = pytest.mark.django_db

T0 = int(time.time()) - 3600
LINES = [
    {
        "name": "Annual report",
        "unit_amount": 1305,
        "quantity": 2,
        "feature_code": "reports",
        "purchase_duration_days": 30,
    },
    {"name": "Lifetime export", "unit_amount": 900, "feature_code": "export"},
    {"name": "Express delivery", "unit_amount": 500},
]


def _at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _open_session(tenant: Tenant, *, user_id: str = "user_42", status: str = "open") -> CheckoutSession:
    """An open invoice with its open session, as hosted_session_create leaves them."""
    invoice = invoice_with_lines(project=tenant.project, user_id=user_id, lines=LINES, status="open")
    BillingCustomer.objects.filter(pk=invoice.customer_id).update(stripe_customer_id=f"cus_inv{invoice.pk}")
    return CheckoutSessionFactory.create(
        project=tenant.project,
        customer=BillingCustomer.objects.get(pk=invoice.customer_id),
        user_id=user_id,
        mode="payment",
        stripe_price_id="",
        invoice=invoice,
        status=status,
        stripe_session_id=f"cs_inv{invoice.pk}",
        expires_at=_at(T0 + 86_400),
    )


def _invoice_of(session: CheckoutSession) -> Invoice:
    assert session.invoice_id is not None
    return Invoice.objects.get(pk=session.invoice_id)


def _stripe_session(session: CheckoutSession, **changes: Any) -> dict[str, Any]:
    invoice = _invoice_of(session)
    obj: dict[str, Any] = {
        "id": session.stripe_session_id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": invoice.total,
        "currency": "usd",
        "customer": f"cus_inv{invoice.pk}",
        "client_reference_id": invoice.user_id,
        "customer_details": {"email": "ada@example.com", "name": "Ada"},
        "payment_intent": f"pi_inv{invoice.pk}",
        "expires_at": T0 + 86_400,
        "recovered_from": None,
        "after_expiration": {
            "recovery": {"enabled": True, "allow_promotion_codes": False, "expires_at": None, "url": None}
        },
        "metadata": {
            "project": session.project.slug,
            "project_id": str(session.project_id),
            "user_id": invoice.user_id,
            "invoice_id": str(invoice.pk),
            "checkout_session": str(session.pk),
        },
    }
    obj.update(changes)
    return obj


def _completed(session: CheckoutSession, suffix: str = "", *, created: int = T0 + 10, **changes: Any) -> dict[str, Any]:
    return make_event(
        f"evt_done_{session.pk}{suffix}",
        "checkout.session.completed",
        created=created,
        obj=_stripe_session(session, **changes),
    )


def _expired(
    session: CheckoutSession, *, created: int = T0 + 20, url: str = "https://pay.example/r/abc"
) -> dict[str, Any]:
    recovery = {"enabled": True, "allow_promotion_codes": False, "expires_at": created + 30 * 86_400, "url": url}
    obj = _stripe_session(
        session,
        status="expired",
        payment_status="unpaid",
        payment_intent=None,
        customer_details=None,
        after_expiration={"recovery": recovery},
    )
    return make_event(f"evt_exp_{session.pk}", "checkout.session.expired", created=created, obj=obj)


def _send(client: Client, *events: dict[str, Any]) -> None:
    for event in events:
        with committed():
            assert deliver(client, event).status_code == 200
    assert set(ProcessorEvent.objects.values_list("status", flat=True)) == {"processed"}


def _active(tenant: Tenant, feature_code: str, user_id: str = "user_42") -> bool:
    return entitlement_check(project_id=tenant.project.pk, user_id=user_id, feature_code=feature_code)[0]


def test_a_completed_session_pays_its_invoice_and_its_feature_lines_become_purchases(
    client: Client, alice: Tenant
) -> None:
    session = _open_session(alice)
    assert not _active(alice, "reports")
    _send(client, _completed(session))

    session.refresh_from_db()
    assert (session.status, session.completed_at, session.customer_email) == (
        "completed",
        _at(T0 + 10),
        "ada@example.com",
    )
    assert session.stripe_payment_intent_id == f"pi_inv{session.invoice_id}"
    invoice = _invoice_of(session)
    assert (invoice.status, invoice.paid_at, invoice.stripe_payment_intent_id) == (
        "paid",
        _at(T0 + 10),
        f"pi_inv{invoice.pk}",
    )
    purchases = {p.feature_code: p for p in Purchase.objects.filter(project=alice.project)}
    assert set(purchases) == {"reports", "export"}  # the line without a feature code buys nothing
    reports = purchases["reports"]
    assert (reports.amount, reports.currency, reports.user_id) == (2610, "usd", "user_42")
    assert reports.invoice_line is not None and reports.invoice_line.product_name == "Annual report"
    assert (reports.valid_from, reports.valid_to) == (_at(T0 + 10), _at(T0 + 10) + dt.timedelta(days=30))
    assert purchases["export"].valid_to is None  # no duration: for life
    assert all(p.stripe_payment_intent_id == f"pi_inv{invoice.pk}" for p in purchases.values())
    assert _active(alice, "reports") and _active(alice, "export")
    changes = ProcessorEvent.objects.get().changes
    assert f"invoice #{invoice.pk} paid (pi_inv{invoice.pk})" in changes


def test_duplicates_and_replays_change_nothing(client: Client, alice: Tenant) -> None:
    session = _open_session(alice)
    _send(client, _completed(session))
    state = list(Purchase.objects.values_list("pk", "feature_code", "valid_from", "valid_to"))
    updated = CheckoutSession.objects.get(pk=session.pk).updated_at

    with committed():
        assert deliver(client, _completed(session)).json()["duplicate"] is True
    # The same session in another event (Stripe also sends async_payment_succeeded), and a replay.
    _send(
        client,
        make_event(
            "evt_async", "checkout.session.async_payment_succeeded", created=T0 + 30, obj=_stripe_session(session)
        ),
    )
    with committed():
        event_process(ledger_id=ProcessorEvent.objects.get(stripe_event_id=f"evt_done_{session.pk}").pk, force=True)

    assert list(Purchase.objects.values_list("pk", "feature_code", "valid_from", "valid_to")) == state
    assert CheckoutSession.objects.get(pk=session.pk).updated_at == updated
    assert ProcessorEvent.objects.get(stripe_event_id="evt_async").changes == []
    assert _invoice_of(session).paid_at == _at(T0 + 10)


def test_an_expired_session_stores_stripes_recovery_url(client: Client, alice: Tenant) -> None:
    session = _open_session(alice)
    _send(client, _expired(session))
    session.refresh_from_db()
    assert (session.status, session.expired_at) == ("expired", _at(T0 + 20))
    assert session.recovery_url == "https://pay.example/r/abc"
    assert session.recovery_url_expires_at == _at(T0 + 20 + 30 * 86_400)
    assert _invoice_of(session).status == "open"


def test_the_sweeps_expiry_is_kept_and_completed_with_the_recovery_url(client: Client, alice: Tenant) -> None:
    session = _open_session(alice, status="expired")
    CheckoutSession.objects.filter(pk=session.pk).update(expired_at=_at(T0 + 5))
    _send(client, _expired(session))
    session.refresh_from_db()
    assert (session.status, session.expired_at, session.recovery_url) == (
        "expired",
        _at(T0 + 5),
        "https://pay.example/r/abc",
    )


def test_an_expired_event_after_the_completion_changes_nothing(client: Client, alice: Tenant) -> None:
    session = _open_session(alice)
    _send(client, _completed(session))
    before = CheckoutSession.objects.get(pk=session.pk)
    _send(client, _expired(session, created=T0 + 5))  # older, delivered later
    after = CheckoutSession.objects.get(pk=session.pk)
    assert (after.status, after.expired_at, after.recovery_url, after.updated_at) == (
        "completed",
        None,
        "",
        before.updated_at,
    )
    assert _invoice_of(session).status == "paid"
    assert _active(alice, "reports")


def test_a_completion_after_the_sweep_expired_the_session_still_pays(client: Client, alice: Tenant) -> None:
    session = _open_session(alice, status="expired")
    _send(client, _completed(session))
    assert CheckoutSession.objects.get(pk=session.pk).status == "completed"
    assert _invoice_of(session).status == "paid"


def test_a_session_recovered_from_ours_pays_the_same_invoice_through_a_new_row(client: Client, alice: Tenant) -> None:
    old = _open_session(alice)
    _send(client, _expired(old))
    recovered = _stripe_session(old, id="cs_recovered_1", recovered_from=old.stripe_session_id, payment_intent="pi_rec")
    _send(client, make_event("evt_recovered", "checkout.session.completed", created=T0 + 100, obj=recovered))

    new = CheckoutSession.objects.get(stripe_session_id="cs_recovered_1")
    assert (new.invoice_id, new.regenerated_from_id, new.status) == (old.invoice_id, old.pk, "completed")
    assert new.stripe_payment_intent_id == "pi_rec" and new.customer_email == "ada@example.com"
    assert CheckoutSession.objects.get(pk=old.pk).status == "regenerated"
    invoice = _invoice_of(old)
    assert (invoice.status, invoice.stripe_payment_intent_id) == ("paid", "pi_rec")
    assert Purchase.objects.filter(stripe_payment_intent_id="pi_rec").count() == 2
    assert _active(alice, "export")


def test_a_recovery_of_a_session_an_operator_replaced_is_recorded_without_the_link(
    client: Client, alice: Tenant
) -> None:
    old = _open_session(alice, status="regenerated")
    replacement = CheckoutSessionFactory.create(
        project=alice.project,
        customer=old.customer,
        user_id=old.user_id,
        mode="payment",
        stripe_price_id="",
        invoice=old.invoice,
        regenerated_from=old,
    )
    recovered = _stripe_session(old, id="cs_recovered_2", recovered_from=old.stripe_session_id)
    _send(client, make_event("evt_recovered_2", "checkout.session.completed", created=T0 + 100, obj=recovered))
    new = CheckoutSession.objects.get(stripe_session_id="cs_recovered_2")
    assert (new.invoice_id, new.regenerated_from_id, new.status) == (old.invoice_id, None, "completed")
    assert CheckoutSession.objects.get(pk=replacement.pk).regenerated_from_id == old.pk
    assert _invoice_of(old).status == "paid"


def test_an_asynchronous_payment_pays_when_it_succeeds(client: Client, alice: Tenant) -> None:
    session = _open_session(alice)
    _send(client, _completed(session, payment_status="unpaid"))
    assert CheckoutSession.objects.get(pk=session.pk).status == "completed"
    assert _invoice_of(session).status == "open"
    assert not Purchase.objects.exists()
    _send(
        client,
        make_event(
            "evt_async_ok", "checkout.session.async_payment_succeeded", created=T0 + 500, obj=_stripe_session(session)
        ),
    )
    invoice = _invoice_of(session)
    assert (invoice.status, invoice.paid_at) == ("paid", _at(T0 + 500))
    assert _active(alice, "reports")


def test_a_payment_of_a_void_invoice_is_noted_for_a_refund_and_buys_nothing(client: Client, alice: Tenant) -> None:
    session = _open_session(alice)
    Invoice.objects.filter(pk=_invoice_of(session).pk).update(status="void")
    _send(client, _completed(session))
    assert _invoice_of(session).status == "void"
    assert not Purchase.objects.exists()
    assert any("should be refunded" in change for change in ProcessorEvent.objects.get().changes)


def _refund(session: CheckoutSession, amount: int, *, created: int) -> dict[str, Any]:
    invoice = _invoice_of(session)
    charge = {
        "id": f"ch_inv{invoice.pk}",
        "object": "charge",
        "amount": invoice.total,
        "amount_refunded": amount,
        "currency": "usd",
        "customer": f"cus_inv{invoice.pk}",
        "payment_intent": f"pi_inv{invoice.pk}",
        "refunded": amount >= invoice.total,
    }
    return make_event(f"evt_refund_{amount}", "charge.refunded", created=created, obj=charge)


@pytest.mark.parametrize("refund_first", [False, True])
def test_a_full_refund_of_the_payment_ends_the_purchases(client: Client, alice: Tenant, refund_first: bool) -> None:
    session = _open_session(alice)
    total = _invoice_of(session).total
    events = [_completed(session), _refund(session, total, created=T0 + 200)]
    _send(client, *(reversed(events) if refund_first else events))

    purchases = Purchase.objects.filter(project=alice.project)
    assert purchases.count() == 2
    assert {(p.status, p.amount_refunded, p.refunded_at) for p in purchases} == {("refunded", total, _at(T0 + 200))}
    assert not _active(alice, "reports") and not _active(alice, "export")


# --- the sandbox's own events -----------------------------------------------------------------------


def _sandbox_events(sandbox: SandboxProcess, event_type: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{sandbox.base_url}/v1/events",
        params={"type": event_type},
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=10,
    )
    answer.raise_for_status()
    events: list[dict[str, Any]] = answer.json()["data"]
    return events


@pytest.mark.e2e
def test_the_sandboxs_events_pay_expire_and_recover_an_invoice(
    client: Client, alice: Tenant, stripe_sandbox: SandboxProcess
) -> None:
    """Paid on the hosted page; another session expired at Stripe, then paid through its recovery URL."""
    urls = {"success_url": "https://alpha.example/paid", "cancel_url": "https://alpha.example/invoice"}
    api = alice.client()
    first = invoice_with_lines(project=alice.project, user_id="u-paid", lines=LINES)
    paid = api.post(f"/api/v1/billing/invoices/{first.pk}/checkout", urls, format="json").json()
    assert pay_on_hosted_page(paid["checkout_url"]).status_code == 303
    (completed,) = _sandbox_events(stripe_sandbox, "checkout.session.completed")
    _send(client, completed)
    first.refresh_from_db()
    assert first.status == "paid" and first.stripe_payment_intent_id.startswith("pi_")
    assert _active(alice, "reports", "u-paid")

    second = invoice_with_lines(project=alice.project, user_id="u-late", lines=LINES)
    late = api.post(f"/api/v1/billing/invoices/{second.pk}/checkout", urls, format="json").json()
    requests.post(  # what Stripe does at expires_at (or an operator in the dashboard)
        f"{stripe_sandbox.base_url}/v1/checkout/sessions/{late['stripe_session_id']}/expire",
        headers={"Authorization": f"Bearer {stripe_sandbox.api_key}"},
        timeout=10,
    ).raise_for_status()
    (expired,) = _sandbox_events(stripe_sandbox, "checkout.session.expired")
    _send(client, expired)
    session = api.get(late["api_url"]).json()
    assert session["status"] == "expired" and session["recovery_url"].startswith(stripe_sandbox.base_url)

    opened = requests.get(session["recovery_url"], allow_redirects=False, timeout=10)
    assert opened.status_code == 302
    assert pay_on_hosted_page(opened.headers["Location"]).status_code == 303
    recovered = [e for e in _sandbox_events(stripe_sandbox, "checkout.session.completed") if e["id"] != completed["id"]]
    assert len(recovered) == 1 and recovered[0]["data"]["object"]["recovered_from"] == late["stripe_session_id"]
    _send(client, recovered[0])
    second.refresh_from_db()
    assert second.status == "paid"
    rows = api.get("/api/v1/billing/sessions", {"invoice_id": second.pk}).json()["results"]
    assert [(row["status"], row["regenerated_from"]) for row in rows] == [
        ("completed", late["id"]),
        ("regenerated", None),
    ]
    assert _active(alice, "export", "u-late")
