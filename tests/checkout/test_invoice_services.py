"""The invoice status moves other features call: finalize (the hosted session), mark paid (the webhook),
and the conditional UPDATE under them, of which two concurrent moves cannot both win."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from apps.checkout.invoices.services import (
    invoice_finalize,
    invoice_mark_paid,
    invoice_mark_uncollectible,
    invoice_void,
)
from apps.checkout.models import Invoice
from apps.common.exceptions import Conflict, NotFound
from apps.common.models import AuditLog
from tests.factories import InvoiceFactory

PAID_AT = dt.datetime(2026, 11, 23, 10, 5, tzinfo=dt.UTC)


def _status(invoice: Invoice) -> str:
    return Invoice.objects.values_list("status", flat=True).get(pk=invoice.pk)


@pytest.mark.django_db
def test_finalize_opens_a_draft_once_and_leaves_an_open_or_uncollectible_invoice_as_it_is() -> None:
    draft = InvoiceFactory.create()
    assert invoice_finalize(invoice_id=draft.pk, actor="hosted") is True
    assert _status(draft) == "open"
    assert invoice_finalize(invoice_id=draft.pk) is False
    uncollectible = InvoiceFactory.create(status="uncollectible")
    assert invoice_finalize(invoice_id=uncollectible.pk) is False
    assert _status(uncollectible) == "uncollectible"


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["paid", "void"])
def test_no_session_can_be_created_for_a_paid_or_void_invoice(status: str) -> None:
    invoice = InvoiceFactory.create(status=status)
    with pytest.raises(Conflict, match=f"is {status}: no checkout session"):
        invoice_finalize(invoice_id=invoice.pk)
    assert _status(invoice) == status


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["open", "uncollectible"])
def test_mark_paid_records_the_payment_once(status: str) -> None:
    invoice = InvoiceFactory.create(status=status)
    assert invoice_mark_paid(invoice_id=invoice.pk, payment_intent_id="pi_1", paid_at=PAID_AT) is True
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_at, invoice.stripe_payment_intent_id) == ("paid", PAID_AT, "pi_1")
    assert invoice.updated_at > PAID_AT  # the time of the write, not the payment's
    later = PAID_AT + dt.timedelta(hours=1)
    # A duplicate or replayed delivery changes nothing, not even the time.
    assert invoice_mark_paid(invoice_id=invoice.pk, payment_intent_id="pi_1", paid_at=later) is False
    assert invoice_mark_paid(invoice_id=invoice.pk, payment_intent_id="pi_2", paid_at=later) is False
    assert Invoice.objects.values_list("paid_at", "stripe_payment_intent_id").get(pk=invoice.pk) == (PAID_AT, "pi_1")


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["draft", "void"])
def test_a_payment_for_a_draft_or_void_invoice_is_not_applied(status: str) -> None:
    invoice = InvoiceFactory.create(status=status)
    assert invoice_mark_paid(invoice_id=invoice.pk, payment_intent_id="pi_1", paid_at=PAID_AT) is False
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_at, invoice.stripe_payment_intent_id) == (status, None, "")


@pytest.mark.django_db
def test_a_missing_invoice_is_not_found() -> None:
    with pytest.raises(NotFound):
        invoice_mark_paid(invoice_id=10**12, payment_intent_id="pi_1", paid_at=PAID_AT)


@pytest.mark.django_db
def test_the_audit_entry_carries_the_actor_and_the_reason() -> None:
    invoice = InvoiceFactory.create(status="open")
    invoice_mark_uncollectible(invoice=invoice, actor="admin:finance", reason="customer went bust")
    entry = AuditLog.objects.get()
    assert (entry.actor, entry.action, entry.reason) == (
        "admin:finance",
        "invoice.mark_uncollectible",
        "customer went bust",
    )
    assert invoice.status == "uncollectible"  # the object passed in is refreshed


def _race(*moves: Callable[[], Any]) -> list[Any]:
    """Runs the moves at once, each on its own connection; what each returned or raised."""
    barrier = threading.Barrier(len(moves))
    outcomes: list[Any] = [None] * len(moves)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = moves[index]()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(moves))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.django_db(transaction=True)
@pytest.mark.requires_postgres
def test_of_a_concurrent_void_and_payment_exactly_one_wins() -> None:
    for _ in range(10):
        invoice = InvoiceFactory.create(status="open")
        invoice_id = invoice.pk

        def void(invoice_id: int = invoice_id) -> Invoice:
            return invoice_void(invoice=Invoice.objects.get(pk=invoice_id), actor="ops")

        def pay(invoice_id: int = invoice_id) -> bool:
            return invoice_mark_paid(invoice_id=invoice_id, payment_intent_id="pi_1", paid_at=PAID_AT)

        voided, paid = _race(void, pay)
        invoice.refresh_from_db()
        if invoice.status == "void":
            assert isinstance(voided, Invoice) and paid is False
            assert invoice.paid_at is None
        else:
            assert invoice.status == "paid" and paid is True
            assert isinstance(voided, Conflict) and "is paid" in str(voided)
            assert invoice.voided_at is None
        assert AuditLog.objects.filter(target=f"invoice #{invoice.pk}").count() == (invoice.status == "void")


@pytest.mark.django_db(transaction=True)
@pytest.mark.requires_postgres
def test_two_concurrent_voids_give_one_void_and_one_conflict() -> None:
    invoice = InvoiceFactory.create(status="open")
    outcomes = _race(
        *[lambda n=n: invoice_void(invoice=Invoice.objects.get(pk=invoice.pk), actor=f"ops{n}") for n in range(2)]
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["Conflict", "Invoice"]
    assert AuditLog.objects.filter(action="invoice.void").count() == 1
