"""Hosted sessions of invoices through the API, against the Stripe sandbox.

Creating one sends the invoice's lines as price_data and opens the invoice; the sessions API lists
and reads them per project; a regenerate is guarded by `updated_at` (an optimistic lock): a fresh
token replaces the session (the old one expired at Stripe), a stale one changes nothing anywhere,
and of two concurrent regenerations with the same token exactly one wins.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
import stripe
from django.db import connection
from django.utils import timezone

from apps.checkout.invoices.services import invoice_void
from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice
from apps.common.models import AuditLog
from apps.common.query import InstantField
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant, make_tenant
from tests.factories import CheckoutSessionFactory, invoice_with_lines
from tests.transaction_guard import StripeRequests, stripe_requests

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]

LINES = [
    {"name": "Annual report", "unit_amount": 1305, "quantity": 2, "feature_code": "reports"},
    {"name": "Express delivery", "unit_amount": 500, "quantity": 1},
]


def _urls(tenant: Tenant) -> dict[str, str]:
    slug = tenant.project.slug
    return {"success_url": f"https://{slug}.example/paid", "cancel_url": f"https://{slug}.example/invoice"}


def _checkout(tenant: Tenant, invoice: Invoice, **headers: str) -> Any:
    return tenant.client().post(
        f"/api/v1/billing/invoices/{invoice.pk}/checkout", _urls(tenant), format="json", headers=headers
    )


def _regenerate(tenant: Tenant, session_id: int, updated_at: str) -> Any:
    return tenant.client().post(
        f"/api/v1/billing/sessions/{session_id}/regenerate", {"updated_at": updated_at}, format="json"
    )


def _sandbox_sessions(client: stripe.StripeClient) -> list[Any]:
    return list(client.v1.checkout.sessions.list(params={"limit": 100}).data)


# --- create -----------------------------------------------------------------------------------------


def test_a_session_sends_the_lines_as_price_data_and_opens_the_invoice(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    invoice = invoice_with_lines(project=alice.project, lines=LINES)
    before = time.time()
    response = _checkout(alice, invoice)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "open"
    assert body["invoice_id"] == invoice.pk
    assert body["api_url"] == f"/api/v1/billing/sessions/{body['id']}" == response.headers["Location"]
    assert body["url"] == body["checkout_url"]
    assert body["checkout_url"] == f"{stripe_sandbox.base_url}/checkout/{body['stripe_session_id']}"
    assert body["regenerated_from"] is None and body["recovery_attempts"] == 0
    invoice.refresh_from_db()
    assert invoice.status == "open"

    held = stripe_client.v1.checkout.sessions.retrieve(body["stripe_session_id"])
    assert held.mode == "payment"
    assert held.amount_total == invoice.total == 1305 * 2 + 500
    assert held.currency == "usd"
    assert held.customer == BillingCustomer.objects.get(pk=invoice.customer_id).stripe_customer_id
    assert held.metadata is not None
    assert held.metadata.to_dict() == {
        "project": "alpha",
        "project_id": str(alice.project.pk),
        "user_id": "user_42",
        "invoice_id": str(invoice.pk),
        "checkout_session": str(body["id"]),
    }
    # expires_at as sent: HOSTED_SESSION_EXPIRES_AFTER_SECONDS (24 h by default) from now.
    assert before + 86_400 - 5 <= held.expires_at <= time.time() + 86_400
    assert InstantField().to_internal_value(body["expires_at"]).timestamp() == held.expires_at
    assert held.after_expiration is not None and held.after_expiration.recovery is not None
    assert held.after_expiration.recovery.enabled is True

    items = stripe_client.v1.checkout.sessions.line_items.list(body["stripe_session_id"]).data
    sent = []
    for item in items:
        assert item.price is not None
        assert item.price.active is False  # an inline price, not one of the catalog
        sent.append((item.description, item.quantity, item.price.unit_amount, item.price.currency))
    assert sent == [("Annual report", 2, 1305, "usd"), ("Express delivery", 1, 500, "usd")]

    audit = AuditLog.objects.get(action="hosted_session.create")
    assert audit.target == f"checkout session #{body['id']}" and audit.actor.startswith("app:app")


def test_a_url_outside_the_allowlist_is_400_and_nothing_is_created(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    invoice = invoice_with_lines(project=alice.project)
    response = alice.client().post(
        f"/api/v1/billing/invoices/{invoice.pk}/checkout",
        {"success_url": "https://evil.example/paid", "cancel_url": "https://alpha.example/invoice"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "success_url": ["This URL does not start with one of the project's allowed redirect prefixes."]
    }
    invoice.refresh_from_db()
    assert invoice.status == "draft"
    assert CheckoutSession.objects.count() == 0
    assert _sandbox_sessions(stripe_client) == []
    assert stripe_client.v1.customers.list().data == []


@pytest.mark.parametrize("status", ["void", "paid", "uncollectible"])
def test_an_invoice_that_is_not_draft_or_open_is_409_and_nothing_is_created(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, status: str
) -> None:
    invoice = invoice_with_lines(project=alice.project, status=status)
    response = _checkout(alice, invoice)
    assert response.status_code == 409
    assert response.json() == {"detail": f"Invoice #{invoice.pk} is {status}: cannot create a hosted session."}
    assert CheckoutSession.objects.count() == 0
    assert _sandbox_sessions(stripe_client) == []


def test_another_projects_invoice_is_404(alice: Tenant, bob: Tenant, stripe_sandbox: SandboxProcess) -> None:
    invoice = invoice_with_lines(project=alice.project)
    response = bob.client().post(f"/api/v1/billing/invoices/{invoice.pk}/checkout", _urls(bob), format="json")
    assert response.status_code == 404
    assert CheckoutSession.objects.count() == 0


def test_the_same_idempotency_key_gives_the_same_session(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    invoice = invoice_with_lines(project=alice.project)
    first = _checkout(alice, invoice, **{"Idempotency-Key": "pay-17"})
    again = _checkout(alice, invoice, **{"Idempotency-Key": "pay-17"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(_sandbox_sessions(stripe_client)) == 1


def test_a_stripe_failure_is_502_and_the_row_says_failed(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    invoice = invoice_with_lines(project=alice.project)
    stripe_sandbox.set_fault("/v1/checkout/sessions", method="POST", status=500, should_retry=False)
    response = _checkout(alice, invoice)
    assert response.status_code == 502
    assert response.json()["stripe_request_id"]
    session = CheckoutSession.objects.get()
    assert session.status == "failed" and session.last_error
    # The invoice was finalized: a new POST .../checkout may try again.
    stripe_sandbox.clear_faults()
    assert _checkout(alice, invoice).status_code == 201


# --- list and read ------------------------------------------------------------------------------------


def _session(tenant: Tenant, invoice: Invoice, **fields: Any) -> CheckoutSession:
    return CheckoutSessionFactory.create(
        project=tenant.project,
        customer=invoice.customer,
        user_id=invoice.user_id,
        mode="payment",
        stripe_price_id="",
        invoice=invoice,
        **fields,
    )


def test_the_list_holds_the_projects_invoice_sessions_newest_first_and_filters(alice: Tenant, bob: Tenant) -> None:
    first = invoice_with_lines(project=alice.project, status="open")
    second = invoice_with_lines(project=alice.project, status="open")
    expired = _session(alice, first, status="expired")
    opened = _session(alice, first, status="open")
    other = _session(alice, second, status="open")
    _session(bob, invoice_with_lines(project=bob.project, status="open"), status="open")
    CheckoutSessionFactory.create(project=alice.project, customer=first.customer, status="open")  # a price checkout

    api = alice.client()
    body = api.get("/api/v1/billing/sessions").json()
    assert [row["id"] for row in body["results"]] == [other.pk, opened.pk, expired.pk]
    assert body["next_cursor"] is None
    assert [r["id"] for r in api.get("/api/v1/billing/sessions", {"status": "open"}).json()["results"]] == [
        other.pk,
        opened.pk,
    ]
    by_invoice = api.get("/api/v1/billing/sessions", {"invoice_id": first.pk}).json()["results"]
    assert [r["id"] for r in by_invoice] == [opened.pk, expired.pk]
    assert api.get("/api/v1/billing/sessions", {"status": "nope"}).status_code == 400
    assert api.get("/api/v1/billing/sessions", {"invoice_id": "x"}).status_code == 400


def test_a_session_is_read_in_its_project_only(alice: Tenant, bob: Tenant) -> None:
    session = _session(alice, invoice_with_lines(project=alice.project, status="open"), status="open")
    answer = alice.client().get(f"/api/v1/billing/sessions/{session.pk}")
    assert answer.status_code == 200
    assert answer.json()["stripe_session_id"] == session.stripe_session_id
    assert bob.client().get(f"/api/v1/billing/sessions/{session.pk}").status_code == 404
    price_checkout = CheckoutSessionFactory.create(project=alice.project, customer=session.customer)
    assert alice.client().get(f"/api/v1/billing/sessions/{price_checkout.pk}").status_code == 404


def test_updated_at_is_written_to_the_microsecond_and_parses_back_to_the_same_instant(alice: Tenant) -> None:
    session = _session(alice, invoice_with_lines(project=alice.project, status="open"), status="open")
    instant = dt.datetime(2026, 11, 23, 10, 0, 0, 120, tzinfo=dt.UTC)
    CheckoutSession.objects.filter(pk=session.pk).update(updated_at=instant)
    text = alice.client().get(f"/api/v1/billing/sessions/{session.pk}").json()["updated_at"]
    assert text == "2026-11-23T10:00:00.000120Z"
    assert InstantField().to_internal_value(text) == instant


# --- regenerate ---------------------------------------------------------------------------------------


def _open_session(tenant: Tenant) -> dict[str, Any]:
    invoice = invoice_with_lines(project=tenant.project, lines=LINES)
    response = _checkout(tenant, invoice)
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def test_a_fresh_token_replaces_the_session_and_expires_the_old_one_at_stripe(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    old = _open_session(alice)
    read = alice.client().get(old["api_url"]).json()
    response = _regenerate(alice, old["id"], read["updated_at"])

    assert response.status_code == 201, response.json()
    new = response.json()
    assert new["regenerated_from"] == old["id"]
    assert new["invoice_id"] == old["invoice_id"]
    assert new["status"] == "open" and new["stripe_session_id"] != old["stripe_session_id"]
    replaced = alice.client().get(old["api_url"]).json()
    assert replaced["status"] == "regenerated" and replaced["regenerated_by"] == new["id"]
    assert replaced["updated_at"] != read["updated_at"]  # the token moved: a second regenerate is stale
    assert stripe_client.v1.checkout.sessions.retrieve(old["stripe_session_id"]).status == "expired"
    assert stripe_client.v1.checkout.sessions.retrieve(new["stripe_session_id"]).status == "open"
    assert len(_sandbox_sessions(stripe_client)) == 2
    audit = AuditLog.objects.get(action="hosted_session.regenerate")
    assert audit.before is not None and audit.after is not None
    assert audit.before["updated_at"] == read["updated_at"]
    assert audit.after["new_session"] == new["id"]


def test_a_stale_token_is_409_and_nothing_changes_here_or_at_stripe(
    alice: Tenant,
    stripe_sandbox: SandboxProcess,
    stripe_client: stripe.StripeClient,
    stripe_requests: StripeRequests,
) -> None:
    old = _open_session(alice)
    current = CheckoutSession.objects.get(pk=old["id"])
    stale = (current.updated_at - dt.timedelta(microseconds=1)).isoformat().replace("+00:00", "Z")
    calls = len(stripe_requests.seen)

    response = _regenerate(alice, old["id"], stale)

    assert response.status_code == 409
    assert "changed since you read it" in response.json()["detail"]
    assert len(stripe_requests.seen) == calls  # not one request to Stripe
    assert CheckoutSession.objects.get(pk=old["id"]).updated_at == current.updated_at
    assert CheckoutSession.objects.count() == 1
    assert stripe_client.v1.checkout.sessions.retrieve(old["stripe_session_id"]).status == "open"
    assert not AuditLog.objects.filter(action="hosted_session.regenerate").exists()


def test_a_second_regenerate_with_the_first_token_is_409(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    old = _open_session(alice)
    token = alice.client().get(old["api_url"]).json()["updated_at"]
    assert _regenerate(alice, old["id"], token).status_code == 201
    assert _regenerate(alice, old["id"], token).status_code == 409
    assert len(_sandbox_sessions(stripe_client)) == 2


def test_an_expired_session_is_regenerated_without_asking_stripe_to_expire_it(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, stripe_requests: StripeRequests
) -> None:
    old = _open_session(alice)
    stripe_client.v1.checkout.sessions.expire(old["stripe_session_id"])
    CheckoutSession.objects.filter(pk=old["id"]).update(status="expired", expired_at=timezone.now())
    token = alice.client().get(old["api_url"]).json()["updated_at"]
    calls = len(stripe_requests.seen)
    response = _regenerate(alice, old["id"], token)
    assert response.status_code == 201, response.json()
    assert [request.url.rsplit("/v1/", 1)[1] for request in stripe_requests.seen[calls:]] == ["checkout/sessions"]


def test_a_regeneration_stripe_refuses_leaves_the_old_session_the_way_back(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    old = _open_session(alice)
    stripe_client.v1.checkout.sessions.expire(old["stripe_session_id"])
    CheckoutSession.objects.filter(pk=old["id"]).update(status="abandoned", expired_at=timezone.now())
    token = alice.client().get(old["api_url"]).json()["updated_at"]
    stripe_sandbox.set_fault("/v1/checkout/sessions", method="POST", status=500, should_retry=False)
    assert _regenerate(alice, old["id"], token).status_code == 502
    stripe_sandbox.clear_faults()
    # The old row is abandoned again (recovery takes it up), the failed one lets go of it.
    restored = CheckoutSession.objects.get(pk=old["id"])
    assert restored.status == "abandoned"
    failed = CheckoutSession.objects.exclude(pk=old["id"]).get()
    assert (failed.status, failed.regenerated_from_id) == ("failed", None)
    # And it can be regenerated again with its new token.
    token = alice.client().get(old["api_url"]).json()["updated_at"]
    assert _regenerate(alice, old["id"], token).status_code == 201


@pytest.mark.parametrize(("status", "invoice_status"), [("completed", "paid"), ("open", "void"), ("failed", "open")])
def test_a_session_that_cannot_be_replaced_is_409(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_requests: StripeRequests, status: str, invoice_status: str
) -> None:
    session = _session(alice, invoice_with_lines(project=alice.project, status=invoice_status), status=status)
    token = alice.client().get(f"/api/v1/billing/sessions/{session.pk}").json()["updated_at"]
    response = _regenerate(alice, session.pk, token)
    assert response.status_code == 409
    assert f"is {status if status != 'open' else invoice_status}:" in response.json()["detail"]
    assert CheckoutSession.objects.get(pk=session.pk).status == status
    assert stripe_requests.seen == []


def test_another_projects_session_cannot_be_regenerated(alice: Tenant, bob: Tenant) -> None:
    session = _session(alice, invoice_with_lines(project=alice.project, status="open"), status="open")
    token = alice.client().get(f"/api/v1/billing/sessions/{session.pk}").json()["updated_at"]
    assert _regenerate(bob, session.pk, token).status_code == 404
    assert CheckoutSession.objects.get(pk=session.pk).status == "open"


def test_a_token_that_is_not_an_instant_is_400(alice: Tenant) -> None:
    session = _session(alice, invoice_with_lines(project=alice.project, status="open"), status="open")
    response = _regenerate(alice, session.pk, "yesterday")
    assert response.status_code == 400
    assert list(response.json()) == ["updated_at"]


# --- on PostgreSQL, with real transactions --------------------------------------------------------------


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_no_stripe_call_is_made_inside_a_transaction(
    stripe_sandbox: SandboxProcess, stripe_requests: StripeRequests
) -> None:
    tenant = make_tenant("alpha")
    old = _open_session(tenant)
    token = tenant.client().get(old["api_url"]).json()["updated_at"]
    assert _regenerate(tenant, old["id"], token).status_code == 201
    paths = [request.url.rsplit("/v1/", 1)[1] for request in stripe_requests.seen]
    assert paths == [
        "customers",
        "checkout/sessions",
        f"checkout/sessions/{old['stripe_session_id']}/expire",
        "checkout/sessions",
    ]
    stripe_requests.assert_none_inside_our_transactions()


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_regenerations_with_one_token_give_one_201_and_one_409(
    stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    tenant = make_tenant("alpha")
    old = _open_session(tenant)
    token = tenant.client().get(old["api_url"]).json()["updated_at"]
    barrier = threading.Barrier(2)
    answers: list[tuple[int, dict[str, Any]]] = []
    errors: list[BaseException] = []

    def regenerate() -> None:
        try:
            api = tenant.client()
            barrier.wait()  # both leave together, on two connections
            response = api.post(
                f"/api/v1/billing/sessions/{old['id']}/regenerate", {"updated_at": token}, format="json"
            )
            answers.append((response.status_code, response.json()))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=regenerate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(code for code, _ in answers) == [201, 409]
    (created,) = [body for code, body in answers if code == 201]
    assert created["regenerated_from"] == old["id"]
    held = _sandbox_sessions(stripe_client)
    assert sorted(session.id for session in held) == sorted([old["stripe_session_id"], created["stripe_session_id"]])
    assert stripe_client.v1.checkout.sessions.retrieve(old["stripe_session_id"]).status == "expired"
    rows = CheckoutSession.objects.filter(invoice_id=old["invoice_id"])
    assert sorted(rows.values_list("status", flat=True)) == ["open", "regenerated"]


def test_voiding_an_invoice_expires_its_open_sessions_so_nobody_can_pay_it(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient
) -> None:
    session = _open_session(alice)
    invoice = Invoice.objects.get(pk=session["invoice_id"])
    assert invoice_void(invoice=invoice, actor="app:test").status == "void"
    assert stripe_client.v1.checkout.sessions.retrieve(session["stripe_session_id"]).status == "expired"
    row = CheckoutSession.objects.get(pk=session["id"])
    assert row.status == "expired" and row.expired_at is not None
