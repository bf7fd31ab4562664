"""The resolve service: accept Stripe's side through the object type's comparer (Stripe read first, no
Stripe call inside a transaction of ours), keep ours, or ignore; a note always; only an open
discrepancy; audited; of two concurrent resolves exactly one wins.

Two kinds of comparer: a recording fake put in COMPARERS, for what the service itself decides, and
the real comparers with the Stripe sandbox, for what finance's accept_stripe does to a user's records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.checkout.models import BillingCustomer
from apps.common.exceptions import Conflict, NotFound
from apps.common.models import AuditLog
from apps.common.stripe_gateway import StripeUnavailable
from apps.common.stripe_gateway.client import as_dict
from apps.entitlements.models import SubscriptionRecord
from apps.entitlements.projection import entitlements_recompute
from apps.entitlements.selectors import entitlement_check
from apps.entitlements.services import subscription_apply_snapshot
from apps.projects.models import Project
from apps.reconciliation.comparers.base import Finding, ListSpec
from apps.reconciliation.models import Discrepancy
from apps.reconciliation.resolutions import discrepancy_resolve
from tests.conftest import Tenant, committed
from tests.factories import BillingCustomerFactory, DiscrepancyFactory, PriceFeatureFactory
from tests.sandbox_objects import sandbox_subscription
from tests.transaction_guard import StripeRequests, stripe_requests

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.django_db
DISCREPANCIES = "/api/v1/billing/reconciliation/discrepancies"


@dataclass
class RecordingComparer:
    """Records what `correct` was handed and whether a transaction was open; raises `fail` if given."""

    object_type: str = "customer"
    seen: list[tuple[Finding, bool]] = field(default_factory=list)
    fail: Exception | None = None
    pause: float = 0.0  # seconds `correct` takes (a slow domain service)

    def list_spec(self) -> ListSpec:
        return ListSpec(operation="customers_iter", params={})

    def compare_page(self, project: Project, stripe_objects: list[dict[str, Any]]) -> list[Finding]:
        return []

    def missing_at_stripe(self, project: Project, seen_ids: set[str]) -> Iterable[Finding]:
        return []

    def correct(self, project: Project, finding: Finding) -> list[str]:
        self.seen.append((finding, connection.in_atomic_block))
        time.sleep(self.pause)
        if self.fail is not None:
            raise self.fail
        return [f"customer {finding.stripe_id}: linked to {finding.user_id}"]


@pytest.fixture
def comparer(monkeypatch: pytest.MonkeyPatch) -> RecordingComparer:
    fake = RecordingComparer()
    monkeypatch.setattr("apps.reconciliation.comparers.COMPARERS", [fake])
    return fake


def _customer_drift(tenant: Tenant, stripe_id: str = "cus_missing", *, stripe_value: Any = "default") -> Discrepancy:
    found: Discrepancy = DiscrepancyFactory.create(
        run__project=tenant.project,
        kind="customer_mapping",
        object_type="customer",
        stripe_id=stripe_id,
        user_id="u1",
        local_value={"user_id": "u1"},
        stripe_value={"user_id": None} if stripe_value == "default" else stripe_value,
    )
    return found


def _resolve(found: Discrepancy, action: str, note: str = "checked with support", actor: str = "ops") -> Discrepancy:
    return discrepancy_resolve(discrepancy_id=found.pk, project=found.project, action=action, note=note, actor=actor)


def _audited(value: Any) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


# --- keep_local and ignore -------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "status"), [("keep_local", "resolved"), ("ignore", "ignored")])
def test_keep_local_and_ignore_close_it_and_change_nothing_else(
    alice: Tenant, comparer: RecordingComparer, action: str, status: str
) -> None:
    found = _customer_drift(alice)
    resolved = _resolve(found, action, note="  ticket 4412  ", actor="admin:finance")
    assert (resolved.status, resolved.resolution_action) == (status, action)
    assert (resolved.resolved_by, resolved.note) == ("admin:finance", "ticket 4412")
    assert resolved.resolved_at is not None
    assert (resolved.local_value, resolved.stripe_value) == ({"user_id": "u1"}, {"user_id": None})
    assert comparer.seen == []  # nothing corrected
    entry = AuditLog.objects.get()
    assert (entry.action, entry.target, entry.actor, entry.reason, entry.project_id) == (
        f"discrepancy.{action}",
        f"discrepancy #{found.pk}",
        "admin:finance",
        "ticket 4412",
        alice.project.pk,
    )
    before, after = _audited(entry.before), _audited(entry.after)
    assert before["status"] == "open" and before["local_value"] == {"user_id": "u1"}
    assert after["status"] == status and after["resolution_action"] == action
    assert "changes" not in after


@pytest.mark.parametrize(("action", "note", "field"), [("ignore", "  ", "note"), ("auto", "n", "action")])
def test_a_blank_note_or_an_action_only_runs_take_is_refused(
    alice: Tenant, comparer: RecordingComparer, action: str, note: str, field: str
) -> None:
    found = _customer_drift(alice)
    with pytest.raises(ValidationError) as refused:
        _resolve(found, action, note=note)
    assert list(refused.value.message_dict) == [field]
    assert Discrepancy.objects.get(pk=found.pk).status == "open"
    assert AuditLog.objects.count() == 0


@pytest.mark.parametrize("status", ["resolved", "ignored", "auto_resolved"])
def test_only_an_open_discrepancy_can_be_resolved(alice: Tenant, comparer: RecordingComparer, status: str) -> None:
    found = _customer_drift(alice)
    Discrepancy.objects.filter(pk=found.pk).update(status=status, resolution_action="gone", note="no longer found")
    with pytest.raises(Conflict) as refused:
        _resolve(found, "accept_stripe")
    assert str(refused.value) == (
        f"Discrepancy {found.pk} is {status} (gone): only an open discrepancy can be resolved. Nothing changed."
    )
    assert comparer.seen == [] and AuditLog.objects.count() == 0
    assert Discrepancy.objects.get(pk=found.pk).note == "no longer found"


def test_another_projects_discrepancy_is_not_found(alice: Tenant, bob: Tenant) -> None:
    theirs = _customer_drift(bob)
    with pytest.raises(NotFound):
        discrepancy_resolve(discrepancy_id=theirs.pk, project=alice.project, action="ignore", note="n", actor="x")
    assert Discrepancy.objects.get(pk=theirs.pk).status == "open"


# --- accept_stripe: what the service decides (a recording comparer) ----------------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.requires_postgres
def test_accept_stripe_reads_stripe_then_corrects_with_no_transaction_of_ours_open(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, comparer: RecordingComparer, stripe_requests: StripeRequests
) -> None:
    customer = stripe_client.v1.customers.create(params={"metadata": {"project": "alpha"}})
    found = _customer_drift(alice, stripe_id=customer.id)
    resolved = _resolve(found, "accept_stripe")
    stripe_requests.assert_none_inside_our_transactions()
    [(finding, in_transaction)] = comparer.seen
    # As in a run: the comparer opens its own transaction (and may read Stripe before it).
    assert not in_transaction
    assert finding.stripe_object is not None and finding.stripe_object["id"] == customer.id
    assert finding.stripe_object["metadata"] == {"project": "alpha"}
    assert (finding.kind, finding.stripe_id, finding.user_id) == ("customer_mapping", customer.id, "u1")
    assert (finding.local_value, finding.stripe_value) == ({"user_id": "u1"}, {"user_id": None})
    assert (resolved.status, resolved.resolution_action) == ("resolved", "accept_stripe")
    after = _audited(AuditLog.objects.get(action="discrepancy.accept_stripe").after)
    assert after["changes"] == [f"customer {customer.id}: linked to u1"]
    assert after["missing_at_stripe"] is False


@pytest.mark.e2e
def test_a_finding_of_something_missing_at_stripe_is_accepted_with_no_object(
    alice: Tenant, stripe_sandbox: Any, comparer: RecordingComparer
) -> None:
    found = _customer_drift(alice, stripe_id="cus_NeverExisted", stripe_value=None)
    resolved = _resolve(found, "accept_stripe")
    [(finding, _)] = comparer.seen
    assert finding.stripe_object is None
    assert resolved.status == "resolved"
    assert _audited(AuditLog.objects.get(action="discrepancy.accept_stripe").after)["missing_at_stripe"] is True


@pytest.mark.e2e
def test_a_finding_whose_object_stripe_no_longer_has_has_no_stripe_side_to_accept(
    alice: Tenant, stripe_sandbox: Any, comparer: RecordingComparer
) -> None:
    found = _customer_drift(alice, stripe_id="cus_NeverExisted")  # found with a Stripe value
    with pytest.raises(Conflict, match="Stripe no longer has customer cus_NeverExisted"):
        _resolve(found, "accept_stripe")
    assert comparer.seen == []
    assert Discrepancy.objects.get(pk=found.pk).status == "open" and AuditLog.objects.count() == 0


@pytest.mark.e2e
def test_a_correction_that_fails_leaves_it_open(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, comparer: RecordingComparer
) -> None:
    comparer.fail = Conflict("user u2 is linked to cus_other; unlink or resolve that first.")
    customer = stripe_client.v1.customers.create(params={"metadata": {"project": "alpha", "user_id": "u2"}})
    found = _customer_drift(alice, stripe_id=customer.id)
    with pytest.raises(Conflict, match="unlink or resolve that first"):
        _resolve(found, "accept_stripe")
    assert len(comparer.seen) == 1
    found.refresh_from_db()
    assert (found.status, found.resolution_action, found.resolved_by, found.note) == ("open", "", "", "")
    assert AuditLog.objects.count() == 0


@pytest.mark.e2e
def test_stripe_failing_leaves_it_open(alice: Tenant, stripe_sandbox: Any, comparer: RecordingComparer) -> None:
    stripe_sandbox.set_fault("/v1/customers", method="GET", status=500, count=100)
    found = _customer_drift(alice, stripe_id="cus_anything")
    with pytest.raises(StripeUnavailable):
        _resolve(found, "accept_stripe")
    assert comparer.seen == []
    assert Discrepancy.objects.get(pk=found.pk).status == "open" and AuditLog.objects.count() == 0


def test_accept_stripe_without_a_comparer_for_the_type_is_a_conflict(
    alice: Tenant, comparer: RecordingComparer
) -> None:
    found = DiscrepancyFactory.create(run__project=alice.project, object_type="invoice", stripe_id="in_1")
    with pytest.raises(Conflict, match="no comparer applies Stripe's side of a invoice"):
        _resolve(found, "accept_stripe")
    assert Discrepancy.objects.get(pk=found.pk).status == "open"
    # keep_local and ignore need no comparer.
    assert _resolve(found, "keep_local").status == "resolved"


# --- accept_stripe through the real comparers -----------------------------------------------------------


def _entitled(tenant: Tenant, feature: str, user_id: str = "u1") -> bool:
    return entitlement_check(project_id=tenant.project.pk, user_id=user_id, feature_code=feature)[0]


@pytest.mark.e2e
def test_accepting_a_cancel_behind_our_back_ends_the_users_entitlement(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any
) -> None:
    sub_id, price_id = sandbox_subscription(stripe_client, user_id="u1")
    PriceFeatureFactory.create(project=alice.project, stripe_price_id=price_id, feature_code="pro")
    listed = as_dict(stripe_client.v1.subscriptions.retrieve(sub_id))
    with committed():
        subscription_apply_snapshot(
            project=alice.project, user_id="u1", data=listed, event_created=int(time.time()) - 600, event_id="evt_1"
        )
        entitlements_recompute(project=alice.project, user_id="u1")
    assert _entitled(alice, "pro")
    stripe_sandbox.silent_cancel(sub_id)  # no event, no webhook
    # As a dry run (or a run whose correction failed) leaves it: open, for finance.
    found = DiscrepancyFactory.create(
        run__project=alice.project,
        kind="subscription_status",
        object_type="subscription",
        stripe_id=sub_id,
        user_id="u1",
        local_value={"status": "active"},
        stripe_value={"status": "canceled"},
    )
    with committed():
        response = alice.client().post(
            f"{DISCREPANCIES}/{found.pk}/resolve",
            {"action": "accept_stripe", "note": "canceled in the dashboard at the customer's request"},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert response.json()["resolution_action"] == "accept_stripe"
    assert SubscriptionRecord.objects.get(stripe_subscription_id=sub_id).status == "canceled"
    assert not _entitled(alice, "pro")  # recomputed, and the cache invalidated on commit
    # Two audit rows: the comparer's correction, and finance's decision with what it changed.
    correction = AuditLog.objects.get(action="reconciliation.correct")
    assert correction.target == f"subscription:{sub_id}"
    decision = _audited(AuditLog.objects.get(action="discrepancy.accept_stripe").after)
    assert f"subscription {sub_id} status: active -> canceled" in decision["changes"]


@pytest.mark.e2e
def test_accepting_lost_customer_metadata_unlinks_our_customer(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any
) -> None:
    customer = stripe_client.v1.customers.create(params={"metadata": {"project": "alpha", "user_id": "u1"}})
    BillingCustomerFactory.create(project=alice.project, user_id="u1", stripe_customer_id=customer.id)
    stripe_sandbox.silent_metadata(customer.id, {"user_id": ""})  # the user is gone from Stripe's side
    found = _customer_drift(alice, stripe_id=customer.id)
    resolved = _resolve(found, "accept_stripe", actor="admin:finance")
    assert resolved.status == "resolved"
    assert BillingCustomer.objects.get(project=alice.project, user_id="u1").stripe_customer_id is None
    decision = _audited(AuditLog.objects.get(action="discrepancy.accept_stripe").after)
    assert decision["changes"] == [f"customer {customer.id} unlinked from u1"]


@pytest.mark.e2e
def test_accepting_a_customer_deleted_at_stripe_unlinks_ours_though_stripe_answers_404(
    alice: Tenant, stripe_sandbox: Any
) -> None:
    BillingCustomerFactory.create(project=alice.project, user_id="u1", stripe_customer_id="cus_GoneForGood")
    found = DiscrepancyFactory.create(
        run__project=alice.project,
        kind="customer_missing_at_stripe",
        object_type="customer",
        stripe_id="cus_GoneForGood",
        user_id="u1",
        local_value={"user_id": "u1"},
        stripe_value={"deleted": True},
    )
    resolved = _resolve(found, "accept_stripe", note="the customer asked to be forgotten")
    assert resolved.resolution_action == "accept_stripe"
    assert BillingCustomer.objects.get(project=alice.project, user_id="u1").stripe_customer_id is None
    decision = _audited(AuditLog.objects.get(action="discrepancy.accept_stripe").after)
    assert decision["missing_at_stripe"] is True
    assert decision["changes"] == ["customer cus_GoneForGood (deleted at Stripe) unlinked from u1"]


@pytest.mark.e2e
def test_a_refusal_of_the_real_comparer_is_a_conflict_and_leaves_it_open(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any
) -> None:
    # The ledger is append-only: a payment we recorded that Stripe does not show succeeded cannot be
    # "accepted"; finance keeps ours or ignores it.
    intent = stripe_client.v1.payment_intents.create(params={"amount": 4900, "currency": "usd"})
    found = DiscrepancyFactory.create(
        run__project=alice.project,
        kind="payment_intent_not_succeeded",
        object_type="payment_intent",
        stripe_id=intent.id,
        local_value={"recorded": True},
        stripe_value={"status": intent.status},
    )
    with pytest.raises(Conflict, match="append-only"):
        _resolve(found, "accept_stripe")
    assert Discrepancy.objects.get(pk=found.pk).status == "open"
    assert _resolve(found, "keep_local").resolution_action == "keep_local"


# --- concurrency --------------------------------------------------------------------------------------------


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Runs the calls at once, each on its own connection; what each returned or raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = calls[index]()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def _post_status(tenant: Tenant, url: str, body: dict[str, str]) -> int:
    status: int = tenant.client().post(url, body, format="json").status_code
    return status


@pytest.mark.django_db(transaction=True)
@pytest.mark.requires_postgres
def test_two_concurrent_resolves_over_the_api_give_one_200_and_one_409(alice: Tenant) -> None:
    for n in range(5):
        found = _customer_drift(alice, stripe_id=f"cus_race_{n}")
        url = f"{DISCREPANCIES}/{found.pk}/resolve"
        statuses = _race(
            partial(_post_status, alice, url, {"action": "keep_local", "note": "first"}),
            partial(_post_status, alice, url, {"action": "ignore", "note": "second"}),
        )
        assert sorted(statuses) == [200, 409], statuses
        found.refresh_from_db()
        winner = "keep_local" if statuses[0] == 200 else "ignore"
        assert found.resolution_action == winner
        assert AuditLog.objects.filter(target=f"discrepancy #{found.pk}").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.requires_postgres
def test_of_two_concurrent_accepts_one_correction_is_applied(alice: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    # A slow correction: the second resolve arrives while the first is still applying it.
    comparer = RecordingComparer(pause=0.5)
    monkeypatch.setattr("apps.reconciliation.comparers.COMPARERS", [comparer])
    monkeypatch.setattr(
        "apps.reconciliation.resolutions.object_retrieve",
        lambda **kwargs: {"id": kwargs["object_id"], "object": "customer", "metadata": {}},
    )
    found = _customer_drift(alice, stripe_id="cus_twice")
    outcomes = _race(*[partial(_resolve, found, "accept_stripe", actor=f"ops{n}") for n in range(2)])
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["Discrepancy", "ResolveInProgress"]
    [refused] = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
    assert str(refused) == (
        f"Discrepancy {found.pk} is being resolved by another request right now; read it again in a moment."
    )
    assert len(comparer.seen) == 1
    assert AuditLog.objects.filter(action="discrepancy.accept_stripe").count() == 1
    # After it: the discrepancy is closed, and a third resolve is told so.
    with pytest.raises(Conflict, match="is resolved \\(accept_stripe by ops"):
        _resolve(found, "ignore")
