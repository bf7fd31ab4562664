"""Finance's reconciliation admin: runs (read-only, filters, start one, run again) and discrepancies
(filters, the two values side by side, resolve one or many with a required note, audited through the
resolve service), each action under its own permission."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client

from apps.checkout.models import BillingCustomer
from apps.common.models import AuditLog
from apps.reconciliation.models import Discrepancy, ReconciliationRun
from tests.conftest import Tenant
from tests.factories import BillingCustomerFactory, DiscrepancyFactory, ReconciliationRunFactory
from tests.transaction_guard import StripeRequests, stripe_requests

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.django_db

RUNS = "/admin/reconciliation/reconciliationrun/"
DISCREPANCIES = "/admin/reconciliation/discrepancy/"
START = f"{RUNS}start/"


@pytest.fixture
def finance(client: Client) -> tuple[Client, User]:
    user: User = get_user_model().objects.create_superuser("finance", "finance@example.invalid", "pw-for-tests")
    client.force_login(user)
    return client, user


def _clerk(client: Client, *codenames: str) -> Client:
    user = get_user_model().objects.create_user("clerk", "clerk@example.invalid", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def _listed(client: Client, url: str, **query: str) -> list[int]:
    response = client.get(url, query)
    assert response.status_code == 200
    return sorted(row.pk for row in response.context["cl"].result_list)


def _messages(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _offered(client: Client, url: str) -> set[str]:
    form = client.get(url).context["action_form"]
    return set(dict(form.fields["action"].choices)) - {""} if form is not None else set()


# --- discrepancies: pages ----------------------------------------------------------------------------------


def test_the_list_filters_by_project_kind_status_and_run_and_shows_both_values(
    finance: tuple[Client, User], alice: Tenant, bob: Tenant
) -> None:
    client, _ = finance
    run = ReconciliationRunFactory.create(project=alice.project)
    status = DiscrepancyFactory.create(run=run, local_value={"status": "active"}, stripe_value={"status": "canceled"})
    refund = DiscrepancyFactory.create(
        run=run,
        kind="charge_amount_refunded",
        object_type="charge",
        stripe_id="ch_1",
        local_value={"amount_refunded": 0},
        stripe_value={"amount_refunded": 1500},
        status="resolved",
    )
    theirs = DiscrepancyFactory.create(run__project=bob.project)
    assert _listed(client, DISCREPANCIES, project__id__exact=str(alice.project.pk)) == [status.pk, refund.pk]
    assert _listed(client, DISCREPANCIES, kind="charge_amount_refunded") == [refund.pk]
    assert _listed(client, DISCREPANCIES, status__exact="open") == [status.pk, theirs.pk]
    assert _listed(client, DISCREPANCIES, run__id__exact=str(run.pk)) == [status.pk, refund.pk]
    assert _listed(client, DISCREPANCIES, run__id__exact="9" * 40) == []  # not an id: no 500
    assert _listed(client, DISCREPANCIES, q="ch_1") == [refund.pk]
    html = client.get(DISCREPANCIES).content.decode()
    # Side by side in the list: ours, then Stripe's, as short JSON.
    assert '{&quot;amount_refunded&quot;:0}</td><td class="field-stripe_short">{&quot;amount_refunded&quot;:1500}' in (
        html
    )


def test_a_long_value_is_shortened_in_the_list_and_shown_whole_on_its_page(
    finance: tuple[Client, User], alice: Tenant
) -> None:
    client, _ = finance
    items = [{"price": f"price_{n:04d}", "quantity": n} for n in range(12)]
    found = DiscrepancyFactory.create(
        run__project=alice.project, kind="subscription_items", local_value={"items": items}, stripe_value=None
    )
    listing = client.get(DISCREPANCIES).content.decode()
    assert "price_0011" not in listing and "…" in listing
    page = client.get(f"{DISCREPANCIES}{found.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "price_0011" in html and "<th>ours</th><th>Stripe</th>" in html
    assert "<pre>null</pre>" in html  # nothing at Stripe
    # Read-only: nothing to edit, nothing to delete.
    assert 'name="status"' not in html
    assert client.get(f"{DISCREPANCIES}{found.pk}/delete/").status_code == 403


# --- discrepancies: resolving ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "resolution"),
    [
        ("keep_local_selected", "resolved", "keep_local"),
        ("ignore_selected", "ignored", "ignore"),
    ],
)
def test_a_bulk_resolve_asks_for_a_note_then_resolves_each_through_the_service_audited(
    finance: tuple[Client, User], alice: Tenant, bob: Tenant, action: str, status: str, resolution: str
) -> None:
    client, _ = finance
    first = DiscrepancyFactory.create(run__project=alice.project)
    second = DiscrepancyFactory.create(run__project=bob.project)
    closed = DiscrepancyFactory.create(run__project=alice.project, status="ignored", resolution_action="ignore")
    pks = [first.pk, second.pk, closed.pk]

    ask = client.post(DISCREPANCIES, {"action": action, "_selected_action": pks})
    assert ask.status_code == 200 and b"Give a reason" in ask.content
    blank = client.post(DISCREPANCIES, {"action": action, "_selected_action": pks, "reason": "   "})
    assert blank.status_code == 200 and b"This field is required" in blank.content
    assert Discrepancy.objects.filter(status="open").count() == 2 and AuditLog.objects.count() == 0

    done = client.post(
        DISCREPANCIES, {"action": action, "_selected_action": pks, "reason": "month-end review"}, follow=True
    )
    assert _messages(done) == [
        f"Resolved as {resolution} 2: #{first.pk}, #{second.pk}.",
        f"Refused 1: #{closed.pk}: Discrepancy {closed.pk} is ignored (ignore): only an open discrepancy can be "
        "resolved. Nothing changed.",
    ]
    for row in Discrepancy.objects.filter(pk__in=[first.pk, second.pk]):
        assert (row.status, row.resolution_action, row.resolved_by, row.note) == (
            status,
            resolution,
            "admin:finance",
            "month-end review",
        )
    entries = AuditLog.objects.filter(action=f"discrepancy.{resolution}")
    assert {(e.actor, e.reason, e.target, e.project_id) for e in entries} == {
        ("admin:finance", "month-end review", f"discrepancy #{first.pk}", alice.project.pk),
        ("admin:finance", "month-end review", f"discrepancy #{second.pk}", bob.project.pk),
    }


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.requires_postgres
def test_accept_stripe_applies_stripes_side_through_the_comparer_with_no_stripe_call_in_a_transaction(
    finance: tuple[Client, User],
    alice: Tenant,
    stripe_sandbox: Any,
    stripe_client: Any,
    stripe_requests: StripeRequests,
) -> None:
    client, _ = finance
    customer = stripe_client.v1.customers.create(params={"metadata": {"project": "alpha", "user_id": "u1"}})
    BillingCustomerFactory.create(project=alice.project, user_id="u1", stripe_customer_id=customer.id)
    stripe_sandbox.silent_metadata(customer.id, {"user_id": ""})
    found = DiscrepancyFactory.create(
        run__project=alice.project,
        kind="customer_mapping",
        object_type="customer",
        stripe_id=customer.id,
        user_id="u1",
        local_value={"user_id": "u1"},
        stripe_value={"user_id": None},
    )
    done = client.post(
        DISCREPANCIES,
        {"action": "accept_stripe_selected", "_selected_action": [found.pk], "reason": "the user left"},
        follow=True,
    )
    assert _messages(done) == [f"Resolved as accept_stripe 1: #{found.pk}."]
    stripe_requests.assert_none_inside_our_transactions()
    assert BillingCustomer.objects.get(project=alice.project, user_id="u1").stripe_customer_id is None
    entry = AuditLog.objects.get(action="discrepancy.accept_stripe")
    assert (entry.actor, entry.reason) == ("admin:finance", "the user left")
    assert AuditLog.objects.filter(action="reconciliation.correct", target=f"customer:{customer.id}").exists()


def test_accept_stripe_without_a_comparer_is_refused_and_named(finance: tuple[Client, User], alice: Tenant) -> None:
    client, _ = finance
    found = DiscrepancyFactory.create(run__project=alice.project, object_type="no_such_type")
    done = client.post(
        DISCREPANCIES,
        {"action": "accept_stripe_selected", "_selected_action": [found.pk], "reason": "Stripe is right"},
        follow=True,
    )
    [message] = _messages(done)
    assert message.startswith(f"Refused 1: #{found.pk}: Discrepancy {found.pk}: no comparer applies")
    assert Discrepancy.objects.get(pk=found.pk).status == "open" and AuditLog.objects.count() == 0


def test_resolving_needs_the_resolve_permission_not_just_the_view(client: Client, alice: Tenant) -> None:
    found = DiscrepancyFactory.create(run__project=alice.project)
    viewer = _clerk(client, "view_discrepancy", "view_reconciliationrun")
    assert _offered(viewer, DISCREPANCIES) == set()
    viewer.post(DISCREPANCIES, {"action": "ignore_selected", "_selected_action": [found.pk], "reason": "x"})
    assert Discrepancy.objects.get(pk=found.pk).status == "open" and AuditLog.objects.count() == 0
    assert _offered(viewer, RUNS) == set()
    assert viewer.get(START).status_code == 403

    get_user_model().objects.filter(username="clerk").delete()
    resolver = _clerk(client, "view_discrepancy", "resolve_discrepancy")
    assert _offered(resolver, DISCREPANCIES) == {"accept_stripe_selected", "keep_local_selected", "ignore_selected"}
    resolver.post(DISCREPANCIES, {"action": "ignore_selected", "_selected_action": [found.pk], "reason": "noise"})
    assert Discrepancy.objects.get(pk=found.pk).resolved_by == "admin:clerk"


# --- runs ----------------------------------------------------------------------------------------------------


def test_the_runs_list_filters_and_a_run_shows_its_counts_cursors_and_discrepancies(
    finance: tuple[Client, User], alice: Tenant, bob: Tenant
) -> None:
    client, _ = finance
    full = ReconciliationRunFactory.create(
        project=alice.project, cursors={"charge": {"starting_after": "ch_cursor_77"}}, summary={"drift_detected": 5}
    )
    failed = ReconciliationRunFactory.create(project=bob.project, mode="incremental", status="failed", trigger="api")
    DiscrepancyFactory.create(run=full)
    assert _listed(client, RUNS, project__id__exact=str(alice.project.pk)) == [full.pk]
    assert _listed(client, RUNS, mode__exact="incremental") == [failed.pk]
    assert _listed(client, RUNS, status__exact="failed", trigger__exact="api") == [failed.pk]
    page = client.get(f"{RUNS}{full.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "ch_cursor_77" in html and "drift_detected" in html and "1 found by this run" in html
    assert f"{DISCREPANCIES}?run__id__exact={full.pk}" in html
    assert 'name="status"' not in html


def test_a_run_is_started_from_the_start_page_through_the_service_and_audited(
    finance: tuple[Client, User], alice: Tenant
) -> None:
    client, _ = finance
    assert b"Start a run" in client.get(RUNS).content
    assert client.get(START).status_code == 200
    refused = client.post(START, {"project": alice.project.pk, "mode": "incremental", "days_back": "31"})
    assert refused.status_code == 200 and b"days_back" in refused.content
    assert ReconciliationRun.objects.count() == 0

    started = client.post(START, {"project": alice.project.pk, "mode": "incremental", "days_back": "3"}, follow=True)
    run = ReconciliationRun.objects.get()
    assert (run.project_id, run.trigger, run.mode, run.days_back, run.dry_run, run.requested_by) == (
        alice.project.pk,
        "admin",
        "incremental",
        3,
        False,
        "admin:finance",
    )
    assert started.redirect_chain[-1][0] == f"{RUNS}{run.pk}/change/"
    [message] = _messages(started)
    assert f'alpha: started <a href="{RUNS}{run.pk}/change/">run #{run.pk}</a> (incremental)' in message
    entry = AuditLog.objects.get(action="reconciliation.run_request")
    assert (entry.actor, entry.target, entry.project_id) == (
        "admin:finance",
        f"reconciliation run #{run.pk}",
        run.project_id,
    )


def test_a_start_while_a_run_is_in_progress_names_it_and_starts_nothing(
    finance: tuple[Client, User], alice: Tenant
) -> None:
    client, _ = finance
    running = ReconciliationRunFactory.create(project=alice.project, status="running")
    response = client.post(START, {"project": alice.project.pk, "mode": "full"}, follow=True)
    [message] = _messages(response)
    assert f"run #{running.pk}</a> (full, scheduled) is in progress" in message
    assert ReconciliationRun.objects.count() == 1
    assert not AuditLog.objects.filter(action="reconciliation.run_request").exists()


def test_run_again_starts_one_run_per_project_with_the_same_mode(
    finance: tuple[Client, User], alice: Tenant, bob: Tenant
) -> None:
    client, _ = finance
    older = ReconciliationRunFactory.create(project=alice.project, mode="full")
    newer = ReconciliationRunFactory.create(project=alice.project, mode="incremental", days_back=5, dry_run=True)
    bobs = ReconciliationRunFactory.create(project=bob.project, mode="full")
    client.post(RUNS, {"action": "run_again", "_selected_action": [older.pk, newer.pk, bobs.pk]}, follow=True)
    started = ReconciliationRun.objects.exclude(pk__in=[older.pk, newer.pk, bobs.pk])
    assert sorted((r.project.slug, r.mode, r.days_back, r.dry_run, r.trigger) for r in started) == [
        ("alpha", "incremental", 5, True, "admin"),
        ("bravo", "full", None, False, "admin"),
    ]


def test_starting_a_run_needs_the_run_permission(client: Client, alice: Tenant) -> None:
    runner = _clerk(client, "view_reconciliationrun", "run_reconciliation")
    assert _offered(runner, RUNS) == {"run_again"}
    assert b"Start a run" in runner.get(RUNS).content
    runner.post(START, {"project": alice.project.pk, "mode": "full"})
    assert ReconciliationRun.objects.get().requested_by == "admin:clerk"
