"""Finance's admin for invoices and hosted sessions: the lines with their arithmetic, the filters, and
the actions, which go through the services (refused moves are named, audited moves carry the admin
user), under the permission of what they do."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client

from apps.checkout.hosted.services import hosted_session_create
from apps.checkout.invoices.services import invoice_create
from apps.checkout.models import CheckoutSession, Invoice
from apps.common.models import AuditLog
from tests.checkout.test_invoices_api import audit_line, configured_catalog
from tests.conftest import Tenant
from tests.factories import CheckoutSessionFactory, InvoiceFactory, InvoiceLineFactory

pytestmark = pytest.mark.django_db

INVOICES = "/admin/checkout/invoice/"
SESSIONS = "/admin/checkout/checkoutsession/"


@pytest.fixture
def staff(client: Client) -> tuple[Client, User]:
    user: User = get_user_model().objects.create_superuser("finance", "finance@example.invalid", "pw-for-tests")
    client.force_login(user)
    return client, user


def _listed(client: Client, url: str, **query: str) -> list[int]:
    response = client.get(url, query)
    assert response.status_code == 200
    return sorted(row.pk for row in response.context["cl"].result_list)


def _messages(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _act(client: Client, action: str, pks: list[int], **extra: str) -> Any:
    return client.post(INVOICES, {"action": action, "_selected_action": pks, **extra}, follow=True)


# --- pages ------------------------------------------------------------------------------------------------


def test_the_list_filters_by_project_and_status_and_finds_an_id_or_a_user(
    staff: tuple[Client, User], alice: Tenant, bob: Tenant
) -> None:
    client, _ = staff
    # User ids without digits: a search for an id also matches user ids that contain its digits, and the
    # factories' numbered user ids would make that depend on how many rows earlier tests created.
    draft = InvoiceFactory.create(customer__project=alice.project, customer__user_id="u-anna", user_id="u-anna")
    paid = InvoiceFactory.create(customer__project=alice.project, customer__user_id="u-paula", status="paid")
    theirs = InvoiceFactory.create(customer__project=bob.project, customer__user_id="u-theo", status="paid")
    assert _listed(client, INVOICES, project__id__exact=str(alice.project.pk)) == [draft.pk, paid.pk]
    assert _listed(client, INVOICES, status__exact="paid") == [paid.pk, theirs.pk]
    assert _listed(client, INVOICES, q=str(theirs.pk)) == [theirs.pk]
    assert _listed(client, INVOICES, q=f"#{draft.pk}") == [draft.pk]
    assert _listed(client, INVOICES, q="u-anna") == [draft.pk]
    assert _listed(client, INVOICES, q="9" * 40) == []  # too long for an id: no 500


def test_the_change_page_shows_each_line_and_its_arithmetic(staff: tuple[Client, User], alice: Tenant) -> None:
    client, _ = staff
    catalog = configured_catalog(alice)
    invoice = invoice_create(
        project=alice.project,
        user_id="user_42",
        currency="usd",
        lines=[audit_line(catalog)],
        actor="app:test",
    )
    CheckoutSessionFactory.create(customer=invoice.customer, invoice=invoice, mode="payment")
    page = client.get(f"{INVOICES}{invoice.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    for text in (
        "base (the product&#x27;s unit amount)",
        "+ option Size: Large",
        ">+500<",
        "+ option Extras: Accessibility review",
        "+ add-on Priority support",
        "= before plan",
        ">7850<",
        "x plan Prepaid 5% off",
        "x 0.95 = 7457.5, rounded once (half even)",
        ">7458<",
        "x quantity 2",
        "= line total (usd, minor units)",
        ">14916<",
        "1 session(s)",
    ):
        assert text in html, text
    # Read-only: no form field to change a line or the invoice, and nothing to delete.
    assert 'name="lines-0-quantity"' not in html and 'name="status"' not in html
    assert client.get(f"{INVOICES}{invoice.pk}/delete/").status_code == 403


def test_a_line_with_a_delta_plan_or_none_reads_as_additions(staff: tuple[Client, User], alice: Tenant) -> None:
    client, _ = staff
    catalog = configured_catalog(alice)
    invoice = invoice_create(
        project=alice.project,
        user_id="user_42",
        currency="usd",
        lines=[
            {"product_id": catalog.audit.pk, "option_ids": [catalog.small], "plan_id": catalog.monthly}
            | {"custom_fields": {"domain": "a.example"}},
            {"product_id": catalog.setup.pk},
        ],
        actor="app:test",
    )
    html = client.get(f"{INVOICES}{invoice.pk}/change/").content.decode()
    assert "+ plan Monthly" in html and ">+0<" in html
    assert "rounded once" not in html


# --- actions ------------------------------------------------------------------------------------------------


def test_void_asks_for_a_reason_then_voids_through_the_service_and_names_the_refused(
    staff: tuple[Client, User], alice: Tenant
) -> None:
    client, _ = staff
    draft = InvoiceFactory.create(customer__project=alice.project)
    uncollectible = InvoiceFactory.create(customer__project=alice.project, status="uncollectible")
    paid = InvoiceFactory.create(customer__project=alice.project, status="paid")
    pks = [draft.pk, uncollectible.pk, paid.pk]

    ask = client.post(INVOICES, {"action": "void_selected", "_selected_action": pks})
    assert ask.status_code == 200 and b"Give a reason" in ask.content
    assert Invoice.objects.filter(status="void").count() == 0

    done = _act(client, "void_selected", pks, reason="sent in error")
    assert _messages(done) == [
        f"Voided 2: #{draft.pk}, #{uncollectible.pk}.",
        f"Refused 1: Invoice {paid.pk} is paid: void is allowed only from draft, open, uncollectible. Nothing changed.",
    ]
    assert dict(Invoice.objects.filter(pk__in=pks).values_list("pk", "status")) == {
        draft.pk: "void",
        uncollectible.pk: "void",
        paid.pk: "paid",
    }
    entries = AuditLog.objects.filter(action="invoice.void").order_by("target")
    assert {(e.actor, e.reason, e.target) for e in entries} == {
        ("admin:finance", "sent in error", f"invoice #{draft.pk}"),
        ("admin:finance", "sent in error", f"invoice #{uncollectible.pk}"),
    }


def test_mark_uncollectible_moves_only_open_invoices(staff: tuple[Client, User], alice: Tenant) -> None:
    client, _ = staff
    opened = InvoiceFactory.create(customer__project=alice.project, status="open")
    draft = InvoiceFactory.create(customer__project=alice.project)
    done = _act(client, "mark_uncollectible_selected", [opened.pk, draft.pk], reason="no answer in 90 days")
    assert _messages(done) == [
        f"Marked uncollectible 1: #{opened.pk}.",
        f"Refused 1: Invoice {draft.pk} is draft: mark_uncollectible is allowed only from open. Nothing changed.",
    ]
    opened.refresh_from_db()
    assert opened.status == "uncollectible" and opened.marked_uncollectible_at is not None
    assert Invoice.objects.get(pk=draft.pk).status == "draft"
    assert AuditLog.objects.get().actor == "admin:finance"


def _clerk(client: Client, *codenames: str) -> Client:
    user = get_user_model().objects.create_user("clerk", "clerk@example.invalid", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def _offered(client: Client, url: str) -> set[str]:
    form = client.get(url).context["action_form"]
    return set(dict(form.fields["action"].choices)) - {""} if form is not None else set()


def test_the_actions_need_the_change_permission_not_just_the_view(client: Client, alice: Tenant) -> None:
    viewer = _clerk(client, "view_invoice", "view_checkoutsession")
    assert _offered(viewer, INVOICES) == set() and _offered(viewer, SESSIONS) == set()
    draft = InvoiceFactory.create(customer__project=alice.project)
    viewer.post(INVOICES, {"action": "void_selected", "_selected_action": [draft.pk], "reason": "x"})
    assert Invoice.objects.get(pk=draft.pk).status == "draft" and AuditLog.objects.count() == 0

    get_user_model().objects.filter(username="clerk").delete()
    finance = _clerk(client, "view_invoice", "change_invoice", "view_checkoutsession", "change_checkoutsession")
    assert _offered(finance, INVOICES) == {"void_selected", "mark_uncollectible_selected"}
    assert _offered(finance, SESSIONS) == {"regenerate_selected"}


# --- sessions -------------------------------------------------------------------------------------------------


def test_the_sessions_list_filters_by_invoice_presence_and_shows_the_new_fields(
    staff: tuple[Client, User], alice: Tenant
) -> None:
    client, _ = staff
    line = InvoiceLineFactory.create(invoice__customer__project=alice.project)
    hosted = CheckoutSessionFactory.create(
        customer=line.invoice.customer, invoice=line.invoice, mode="payment", stripe_price_id="", recovery_attempts=2
    )
    plain = CheckoutSessionFactory.create(customer__project=alice.project)
    assert _listed(client, SESSIONS, invoice__isempty="0") == [hosted.pk]
    assert _listed(client, SESSIONS, invoice__isempty="1") == [plain.pk]
    assert _listed(client, SESSIONS, invoice__id__exact=str(line.invoice.pk)) == [hosted.pk]
    assert _listed(client, SESSIONS, status__exact="open", project__id__exact=str(alice.project.pk)) == [
        hosted.pk,
        plain.pk,
    ]
    page = client.get(f"{SESSIONS}{hosted.pk}/change/").content.decode()
    for label in ("Invoice:", "Recovery attempts:", "Recovery url:", "Expired at:", "Regenerated from:"):
        assert label in page, label


def test_regenerate_refuses_a_session_that_cannot_be_replaced_and_changes_nothing(
    staff: tuple[Client, User], alice: Tenant
) -> None:
    client, _ = staff
    invoice = InvoiceFactory.create(customer__project=alice.project, status="paid")
    session = CheckoutSessionFactory.create(
        customer=invoice.customer, invoice=invoice, mode="payment", stripe_price_id="", status="completed"
    )
    before = CheckoutSession.objects.filter(pk=session.pk).values().get()
    response = client.post(SESSIONS, {"action": "regenerate_selected", "_selected_action": [session.pk]}, follow=True)
    [message] = _messages(response)
    assert message.startswith(f"Refused 1: #{session.pk}: ")
    assert "completed" in message
    assert CheckoutSession.objects.filter(pk=session.pk).values().get() == before
    assert CheckoutSession.objects.count() == 1


@pytest.mark.e2e
def test_regenerate_replaces_a_session_through_the_service_under_its_lock(
    staff: tuple[Client, User], alice: Tenant, stripe_sandbox: Any, stripe_client: Any
) -> None:
    client, _ = staff
    line = InvoiceLineFactory.create(invoice__customer__project=alice.project)
    urls = {"success_url": "https://alpha.example/paid", "cancel_url": "https://alpha.example/invoice"}
    old = hosted_session_create(invoice_id=line.invoice.pk, actor="app:test", **urls)
    assert old.status == "open"

    response = client.post(SESSIONS, {"action": "regenerate_selected", "_selected_action": [old.pk]}, follow=True)

    new = CheckoutSession.objects.get(regenerated_from=old)
    assert _messages(response) == [f"Regenerated 1: #{old.pk} → #{new.pk}."]
    old.refresh_from_db()
    assert old.status == "regenerated" and new.status == "open" and new.invoice_id == line.invoice.pk
    entry = AuditLog.objects.get(action="hosted_session.regenerate")
    assert entry.actor == "admin:finance" and entry.target == f"checkout session #{old.pk}"
    assert stripe_client.v1.checkout.sessions.retrieve(old.stripe_session_id).status == "expired"
    assert stripe_client.v1.checkout.sessions.retrieve(new.stripe_session_id).status == "open"
