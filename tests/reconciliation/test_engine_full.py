"""Full runs against the sandbox: counts, findings recorded once, corrections, gone findings closed."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from apps.checkout.models import BillingCustomer
from apps.reconciliation.listing import TokenBucket, owned_objects
from apps.reconciliation.models import Discrepancy, ReconciliationRun, SyncCursor
from apps.reconciliation.services import reconcile
from tests.conftest import Tenant
from tests.reconciliation.conftest import AUTO, DRIFT, MISSING, FakeComparer, stripe_customers

pytestmark = pytest.mark.django_db


def _full(tenant: Tenant, **kwargs: Any) -> ReconciliationRun:
    (run,) = reconcile(project=tenant.project, mode="full", days_back=None, dry_run=False, trigger="manual", **kwargs)
    return run


def _open() -> set[tuple[str, str]]:
    return set(Discrepancy.objects.filter(status="open").values_list("kind", "stripe_id"))


def test_a_full_run_counts_pages_findings_and_writes_and_sees_only_its_project(
    alice: Tenant, bob: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    clean = stripe_customers(stripe_client, alice, 4)
    drifted = stripe_customers(stripe_client, alice, 2, drift="yes")
    stripe_customers(stripe_client, bob, 3, drift="yes")  # the same Stripe account, another project

    run = _full(alice)

    assert run.status == "succeeded", run.error
    assert sorted(id for page in fake.pages for id in page) == sorted(clean + drifted)
    assert run.counts["customer"] == {"checked": 6, "drift_found": 2, "corrected": 0, "left_open": 2, "errors": 0}
    assert run.counts["total"] == run.counts["customer"]
    assert _open() == {(DRIFT, stripe_id) for stripe_id in drifted}
    assert run.db_writes == 2  # the two findings: nothing else is written for drift-free objects
    # 9 customers at 3 a page: 3 requests (the third says no more follow).
    assert run.stripe_requests == 3
    summary = run.summary
    assert summary["drift_detected"] == 2 and summary["corrected"] == 0 and summary["left_open"] == 2
    assert summary["subscriptions_checked"] == 0 and summary["purchases_checked"] == 0
    assert summary["by_kind"] == {DRIFT: 2} and summary["stripe_requests"] == 3 and summary["status"] == "succeeded"
    cursor = SyncCursor.objects.get(project=alice.project, object_type="customer", mode="full")
    assert cursor.completed_at is not None and cursor.starting_after == "" and cursor.pages == 3
    assert run.cursors["customer"]["completed_at"] is not None


def test_an_open_finding_seen_again_is_updated_not_duplicated(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    (drifted,) = stripe_customers(stripe_client, alice, 1, drift="yes")
    first = _full(alice)
    second = _full(alice)

    (row,) = Discrepancy.objects.filter(stripe_id=drifted)
    assert (row.status, row.run_id, row.last_seen_run_id) == ("open", first.pk, second.pk)
    assert second.counts["total"]["drift_found"] == 1 and second.db_writes == 1


@pytest.mark.parametrize(("status", "action"), [("resolved", "keep_local"), ("ignored", "ignore")])
def test_a_difference_finance_kept_or_ignored_is_not_raised_again(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer, status: str, action: str
) -> None:
    (drifted,) = stripe_customers(stripe_client, alice, 1, drift="yes")
    _full(alice)
    Discrepancy.objects.filter(stripe_id=drifted).update(status=status, resolution_action=action)

    again = _full(alice)

    assert Discrepancy.objects.filter(stripe_id=drifted).count() == 1
    assert _open() == set()
    assert again.db_writes == 0


def test_the_policy_corrects_what_it_may_and_a_second_run_finds_nothing_new(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    auto = stripe_customers(stripe_client, alice, 2, auto="yes")
    corrections = REGISTRY.get_sample_value("billing_reconciliation_corrections_total", {"kind": AUTO}) or 0

    run = _full(alice)

    assert fake.corrected == list(reversed(auto))  # newest first, as Stripe lists
    rows = Discrepancy.objects.filter(kind=AUTO)
    assert {(r.stripe_id, r.status, r.resolution_action) for r in rows} == {(i, "auto_resolved", "auto") for i in auto}
    assert all(r.note.startswith(f"Auto-corrected by run #{run.pk}: cus_") for r in rows)
    assert run.counts["customer"]["corrected"] == 2 and run.counts["customer"]["left_open"] == 0
    assert run.db_writes == 4  # two rows, two corrections
    assert REGISTRY.get_sample_value("billing_reconciliation_corrections_total", {"kind": AUTO}) == corrections + 2

    again = _full(alice)
    assert again.counts["total"]["drift_found"] == 0 and again.db_writes == 0
    assert Discrepancy.objects.count() == 2


def test_a_failed_correction_leaves_the_finding_open_with_the_error_and_counts_it(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    (auto,) = stripe_customers(stripe_client, alice, 1, auto="yes")
    fake.fail_correction = True

    run = _full(alice)

    assert run.status == "succeeded"
    row = Discrepancy.objects.get(stripe_id=auto)
    assert row.status == "open" and "RuntimeError: the domain service refused" in row.note
    assert run.counts["customer"]["errors"] == 1 and run.summary["errors"] == 1


def test_findings_no_longer_there_are_closed_with_a_note(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    fixed_elsewhere, deleted = stripe_customers(stripe_client, alice, 2, drift="yes")
    (kept,) = stripe_customers(stripe_client, alice, 1, drift="yes")
    _full(alice)
    stripe_client.v1.customers.update(fixed_elsewhere, params={"metadata": {"drift": "no"}})
    stripe_client.v1.customers.delete(deleted)

    run = _full(alice)

    closed = {row.stripe_id: row for row in Discrepancy.objects.filter(status="resolved")}
    assert set(closed) == {fixed_elsewhere, deleted}
    for row in closed.values():
        assert row.resolution_action == "gone" and row.note == f"No longer found by run #{run.pk}."
    assert _open() == {(DRIFT, kept)}
    assert run.summary["closed"] == 2


def test_a_linked_customer_stripe_never_listed_is_missing_at_stripe(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    (listed,) = stripe_customers(stripe_client, alice, 1)
    (gone,) = stripe_customers(stripe_client, alice, 1)
    stripe_client.v1.customers.delete(gone)
    BillingCustomer.objects.create(project=alice.project, user_id="a", stripe_customer_id=listed)
    BillingCustomer.objects.create(project=alice.project, user_id="b", stripe_customer_id=gone)

    run = _full(alice)

    assert _open() == {(MISSING, gone)}
    assert run.counts["customer"]["drift_found"] == 1


def test_a_correction_that_changes_nothing_leaves_the_finding_open_to_be_compared_again(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: FakeComparer
) -> None:
    (auto,) = stripe_customers(stripe_client, alice, 1, auto="yes")
    fake.correction_changes_nothing = True

    run = _full(alice)

    row = Discrepancy.objects.get(stripe_id=auto)
    assert row.status == "open" and row.note.startswith(f"Auto-correction in run #{run.pk} changed nothing")
    assert run.counts["customer"]["corrected"] == 0 and run.counts["customer"]["left_open"] == 1
    assert run.db_writes == 1

    fake.correction_changes_nothing = False
    again = _full(alice)
    row.refresh_from_db()
    assert (row.status, row.resolution_action, row.last_seen_run_id) == ("auto_resolved", "auto", again.pk)
    assert Discrepancy.objects.count() == 1


def test_a_page_keeps_the_projects_own_objects_by_the_webhook_routers_rules(alice: Tenant, bob: Tenant) -> None:
    BillingCustomer.objects.create(project=alice.project, user_id="a1", stripe_customer_id="cus_alice")
    BillingCustomer.objects.create(project=bob.project, user_id="b1", stripe_customer_id="cus_bob")
    subscriptions = [
        {"id": "sub_meta", "metadata": {"project": "alpha", "user_id": "a1"}, "customer": "cus_bob"},
        {"id": "sub_customer", "metadata": {}, "customer": "cus_alice"},
        {"id": "sub_expanded", "metadata": {}, "customer": {"id": "cus_alice", "object": "customer"}},
        {"id": "sub_bobs_meta", "metadata": {"project": "bravo", "user_id": "b1"}, "customer": "cus_alice"},
        {"id": "sub_unknown_slug", "metadata": {"project": "nope", "user_id": "x"}, "customer": "cus_alice"},
        {"id": "sub_no_user", "metadata": {"project": "alpha"}, "customer": "cus_bob"},
        {"id": "sub_nobody", "metadata": {}, "customer": "cus_other_app"},
    ]
    owned = owned_objects(alice.project, subscriptions, object_type="subscription")
    assert [obj["id"] for obj in owned] == ["sub_meta", "sub_customer", "sub_expanded", "sub_unknown_slug"]

    customers = [
        {"id": "cus_alice", "metadata": {}},  # lost its metadata: still ours to compare (drift)
        {"id": "cus_bob", "metadata": {"project": "alpha", "user_id": "a9"}},  # names us: ours to compare too
        {"id": "cus_new", "metadata": {"project": "alpha", "user_id": "a2"}},
        {"id": "cus_other_app", "metadata": {"app": "elsewhere"}},
    ]
    owned = owned_objects(alice.project, customers, object_type="customer")
    assert [obj["id"] for obj in owned] == ["cus_alice", "cus_bob", "cus_new"]
    assert [o["id"] for o in owned_objects(bob.project, customers, object_type="customer")] == ["cus_bob"]


def test_the_token_bucket_paces_requests_at_the_rate_after_a_one_second_burst() -> None:
    now = [100.0]
    bucket = TokenBucket(4, clock=lambda: now[0])
    assert [bucket.wait_time() for _ in range(4)] == [0.0, 0.0, 0.0, 0.0]  # a second's worth saved up
    assert bucket.wait_time() == pytest.approx(0.25)
    assert bucket.wait_time() == pytest.approx(0.5)
    now[0] += 10  # idle: the bucket refills, but never beyond one second's worth
    assert [bucket.wait_time() for _ in range(4)] == [0.0, 0.0, 0.0, 0.0]
    assert bucket.wait_time() == pytest.approx(0.25)
