"""Issue 12's "Done means", proven with the real comparers and policy against the sandbox.

The world: a project's subscriptions and one-time payments made in bulk at the sandbox (no events,
as if they predate the service), and our rows as the webhooks would have left them (each
subscription applied through subscription_apply_snapshot, each payment through purchase_record and
revenue_payment_record, every customer linked, the entitlements computed). Then things happen
behind our back through the sandbox's silent changes, which record no event.

Elsewhere: the missed webhook over a live server is tests/e2e/test_reconciliation_e2e.py; a killed
run resumed with the engine's fake comparer is test_engine_resume.py (here with the real ones);
two triggers inside the service at once is test_engine_runs.py (here over the API).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
import time_machine
from django.db import connections, transaction
from django.utils import timezone

from apps.checkout.models import BillingCustomer
from apps.common.models import AuditLog
from apps.common.stripe_gateway import list_page
from apps.entitlements.models import Entitlement, Purchase, SubscriptionRecord
from apps.entitlements.projection import entitlements_recompute
from apps.entitlements.services import purchase_record, revenue_payment_record, subscription_apply_snapshot
from apps.reconciliation import listing
from apps.reconciliation.models import Discrepancy, ReconciliationRun, SyncCursor
from apps.reconciliation.policy import POLICY
from apps.reconciliation.services import reconcile
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant, committed
from tests.factories import PriceFeatureFactory

pytestmark = pytest.mark.django_db

DAY = 86400
RUNS = "/api/v1/billing/reconciliation/runs"
DISCREPANCIES = "/api/v1/billing/reconciliation/discrepancies"
EXPORT_PRICE = "price_export_once"  # the one-time payments' price: feature `export`, for life


# --- the world ------------------------------------------------------------------------------------
@dataclass
class World:
    tenant: Tenant
    price: str  # every subscription's price (feature `pro`)
    other_price: str  # a price of the same interval (feature `team`), for re-pricing
    subscriptions: list[str]
    customers: list[str]  # customers[i] holds subscriptions[i]
    users: list[str]
    payment_intents: list[str] = field(default_factory=list)
    charges: list[str] = field(default_factory=list)
    buyers: list[str] = field(default_factory=list)
    listed: dict[str, dict[str, Any]] = field(default_factory=dict)  # subscription id -> as Stripe listed it

    @property
    def slug(self) -> str:
        return self.tenant.project.slug


def _recurring_price(stripe_client: stripe.StripeClient) -> str:
    price = stripe_client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 4000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "T"},
        }
    )
    return str(price.id)


def _listed_subscriptions(slug: str) -> dict[str, dict[str, Any]]:
    """Every subscription at the sandbox as the run's gateway hands it over (plain JSON dicts)."""
    found: dict[str, dict[str, Any]] = {}
    after: str | None = None
    while True:
        objects, more = list_page(
            project_slug=slug, object_type="subscription", params={"status": "all"}, starting_after=after
        )
        found.update((obj["id"], obj) for obj in objects)
        if not more or not objects:
            return found
        after = objects[-1]["id"]


def build_world(
    sandbox: SandboxProcess,
    stripe_client: stripe.StripeClient,
    tenant: Tenant,
    *,
    subscriptions: int,
    payments: int = 0,
    prefix: str = "user_",
) -> World:
    """The project's objects at the sandbox, and ours in step with them (as the webhooks left them)."""
    project = tenant.project
    made = sandbox.bulk_subscriptions(
        subscriptions, metadata={"project": project.slug}, user_prefix=prefix, backdate_days=60
    )
    world = World(
        tenant=tenant,
        price=made["price"],
        other_price=_recurring_price(stripe_client),
        subscriptions=made["subscriptions"],
        customers=made["customers"],
        users=made["users"],
    )
    PriceFeatureFactory.create(project=project, stripe_price_id=world.price, feature_code="pro")
    PriceFeatureFactory.create(project=project, stripe_price_id=world.other_price, feature_code="team")
    PriceFeatureFactory.create(project=project, stripe_price_id=EXPORT_PRICE, feature_code="export")
    BillingCustomer.objects.bulk_create(
        BillingCustomer(project=project, user_id=user, stripe_customer_id=customer)
        for user, customer in zip(world.users, world.customers, strict=True)
    )
    world.listed = _listed_subscriptions(project.slug)
    for sub_id, user in zip(world.subscriptions, world.users, strict=True):
        obj = world.listed[sub_id]
        subscription_apply_snapshot(
            project=project, user_id=user, data=obj, event_created=obj["created"], event_id=f"evt_seed_{sub_id}"
        )
    if payments:
        paid = sandbox.bulk_payments(
            payments, amount=4900, metadata={"project": project.slug}, user_prefix=f"{prefix}buyer_", backdate_days=5
        )
        world.payment_intents, world.charges, world.buyers = paid["payment_intents"], paid["charges"], paid["users"]
        paid_at = timezone.now() - timedelta(days=1)
        for intent, buyer in zip(world.payment_intents, world.buyers, strict=True):
            purchase_record(
                project=project,
                user_id=buyer,
                price_id=EXPORT_PRICE,
                amount=4900,
                currency="usd",
                paid_at=paid_at,
                payment_intent_id=intent,
                checkout_session_id=f"cs_seed_{intent}",
            )
            revenue_payment_record(
                project=project, payment_intent_id=intent, amount=4900, currency="usd", occurred_at=paid_at
            )
    for user in [*world.users, *world.buyers]:
        entitlements_recompute(project=project, user_id=user)
    return world


def full_run(tenant: Tenant) -> ReconciliationRun:
    # committed(): the corrections' cache invalidations run on commit, as in production.
    with committed():
        (run,) = reconcile(project=tenant.project, mode="full", days_back=None, dry_run=False, trigger="manual")
    assert run.status == "succeeded", run.error
    return run


def check(tenant: Tenant, user_id: str, feature: str) -> dict[str, Any]:
    """The entitlement check, over the API."""
    response = tenant.client().get(
        "/api/v1/entitlements/check",
        {"user_id": user_id, "project_id": str(tenant.project.pk), "feature_code": feature},
    )
    assert response.status_code == 200, response.content
    return dict(response.json())


def active(tenant: Tenant, user_id: str, feature: str) -> bool:
    return bool(check(tenant, user_id, feature)["active"])


def findings(project: Any = None) -> set[tuple[str, str, str]]:
    rows = Discrepancy.objects.all() if project is None else Discrepancy.objects.filter(project=project)
    return set(rows.values_list("kind", "stripe_id", "status"))


def no_duplicates() -> None:
    keys = list(Discrepancy.objects.values_list("project_id", "kind", "stripe_id"))
    assert len(keys) == len(set(keys)), "a finding was recorded twice"


@pytest.fixture
def fast(settings: Any) -> None:
    settings.RECONCILIATION_STRIPE_RPS = 1000


# --- drift ------------------------------------------------------------------------------------------
def test_a_full_run_finds_every_silent_change_corrects_what_policy_allows_and_a_second_run_changes_nothing(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, fast: None
) -> None:
    world = build_world(stripe_sandbox, stripe_client, alice, subscriptions=300, payments=10)
    subs, customers, users = world.subscriptions, world.customers, world.users
    assert Discrepancy.objects.count() == 0
    before = {user: active(alice, user, "pro") for user in (users[10], users[20], users[30], users[60])}
    assert all(before.values()) and active(alice, world.buyers[3], "export")  # and now cached

    # Behind our back, with no event: 1% of the subscriptions canceled or re-priced, a period end moved,
    # a charge refunded, a customer's metadata losing its user, a customer deleted (its subscription
    # is canceled with it, as Stripe does).
    stripe_sandbox.silent_cancel(subs[10])
    stripe_sandbox.silent_cancel(subs[20])
    stripe_sandbox.silent_reprice(subs[30], world.other_price)
    old_end = world.listed[subs[40]]["items"]["data"][0]["current_period_end"]
    new_end = old_end + 30 * DAY
    stripe_sandbox.silent_move_period_end(subs[40], new_end)
    stripe_sandbox.silent_refund(world.charges[3])
    stripe_sandbox.silent_metadata(customers[50], {"user_id": ""})
    stripe_sandbox.silent_delete_customer(customers[60])

    run = full_run(alice)

    expected = {
        ("subscription_status", subs[10], "auto_resolved"),
        ("subscription_status", subs[20], "auto_resolved"),
        ("subscription_items", subs[30], "auto_resolved"),
        ("subscription_period_end", subs[40], "auto_resolved"),
        ("subscription_status", subs[60], "auto_resolved"),  # canceled with its deleted customer
        ("charge_amount_refunded", world.charges[3], "auto_resolved"),
        ("customer_mapping", customers[50], "open"),
        ("customer_missing_at_stripe", customers[60], "open"),
    }
    assert findings() == expected  # every change found, and nothing else
    for kind, _, status in expected:
        assert POLICY[kind].auto_correct is (status == "auto_resolved")
    counts = run.counts
    assert counts["subscription"]["checked"] == 300 and counts["customer"]["checked"] == 299  # one deleted
    assert counts["payment_intent"]["checked"] == 10 and counts["charge"]["checked"] == 10
    assert counts["total"]["drift_found"] == 8 and counts["total"]["corrected"] == 6
    assert counts["total"]["left_open"] == 2 and counts["total"]["errors"] == 0
    assert run.summary["subscriptions_checked"] == 300 and run.summary["purchases_checked"] == 20
    assert run.db_writes == 8 + 6  # a row per finding, one write per correction: proportional to drift
    user_of = {row.stripe_id: row.user_id for row in Discrepancy.objects.all()}
    assert user_of[subs[30]] == users[30] and user_of[customers[50]] == users[50]
    assert user_of[world.charges[3]] == world.buyers[3]
    corrections = AuditLog.objects.filter(action="reconciliation.correct")
    assert corrections.count() == 6

    # The entitlement checks say what Stripe says (the cached answers were invalidated).
    assert not active(alice, users[10], "pro") and not active(alice, users[20], "pro")
    assert not active(alice, users[30], "pro") and active(alice, users[30], "team")
    moved = check(alice, users[40], "pro")
    assert moved["active"] and datetime.fromisoformat(moved["valid_to"]) == datetime.fromtimestamp(new_end, tz=UTC)
    assert not active(alice, users[60], "pro")
    assert not active(alice, world.buyers[3], "export") and active(alice, world.buyers[4], "export")
    assert Purchase.objects.get(stripe_payment_intent_id=world.payment_intents[3]).status == "refunded"
    # The open ones changed nothing: finance decides who the customer is.
    assert active(alice, users[50], "pro") and active(alice, users[0], "pro")
    assert BillingCustomer.objects.get(project=alice.project, user_id=users[50]).stripe_customer_id == customers[50]
    assert BillingCustomer.objects.get(project=alice.project, user_id=users[60]).stripe_customer_id == customers[60]

    # A second run changes nothing and records no new discrepancy.
    rows_before = set(Discrepancy.objects.values_list("pk", "kind", "stripe_id", "status", "run_id"))
    records_changed = SubscriptionRecord.objects.order_by("-updated_at").values_list("updated_at", flat=True)[0]
    entitlements = set(Entitlement.objects.values_list("pk", "computed_at"))

    again = full_run(alice)

    assert set(Discrepancy.objects.values_list("pk", "kind", "stripe_id", "status", "run_id")) == rows_before
    assert again.counts["total"]["corrected"] == 0 and again.summary["closed"] == 0
    assert again.counts["total"]["drift_found"] == 2  # the two open ones, seen again
    assert again.db_writes == 2  # their last_seen_run, which lets a later run close them once gone
    assert set(Discrepancy.objects.filter(last_seen_run=again).values_list("status", flat=True)) == {"open"}
    assert AuditLog.objects.filter(action="reconciliation.correct").count() == 6
    assert SubscriptionRecord.objects.order_by("-updated_at").values_list("updated_at", flat=True)[0] == records_changed
    assert set(Entitlement.objects.values_list("pk", "computed_at")) == entitlements


# --- resume -----------------------------------------------------------------------------------------
class Killed(BaseException):
    """The process dying: nothing in the engine catches it, the run stays `running`."""


def test_a_run_killed_after_some_pages_resumes_from_its_cursor_and_ends_as_an_uninterrupted_one(
    alice: Tenant,
    stripe_sandbox: SandboxProcess,
    stripe_client: stripe.StripeClient,
    fast: None,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.RECONCILIATION_PAGE_SIZE = 10
    world = build_world(stripe_sandbox, stripe_client, alice, subscriptions=60)
    subs = world.subscriptions  # listed newest first: subs[59] is on page 1, subs[0] on page 6
    for index in (55, 35, 5):  # pages 1, 3 (the one the kill interrupts) and 6
        stripe_sandbox.silent_cancel(subs[index])
    stripe_sandbox.silent_reprice(subs[25], world.other_price)  # page 4, after the kill
    stripe_sandbox.silent_metadata(world.customers[45], {"user_id": ""})  # left open

    # The world as it is now, twice: killed then resumed, and (rolled back to here) uninterrupted.
    savepoint = transaction.savepoint()
    checkpoint = listing.CursorPass.checkpoint
    subscription_pages = []

    def dies_on_the_third_subscription_page(self: Any, key: str, **kwargs: Any) -> None:
        if key == "subscription":
            subscription_pages.append(kwargs["ids"])
            if len(subscription_pages) == 3:
                # Page 3 was compared, its findings recorded and corrected: the process dies
                # before its checkpoint.
                raise Killed
        checkpoint(self, key, **kwargs)

    monkeypatch.setattr(listing.CursorPass, "checkpoint", dies_on_the_third_subscription_page)
    with pytest.raises(Killed):
        reconcile(project=alice.project, mode="full", days_back=None, dry_run=False, trigger="manual")
    killed = ReconciliationRun.objects.get()
    assert killed.status == "running"
    cursor = SyncCursor.objects.get(project=alice.project, mode="full", object_type="subscription")
    assert (cursor.pages, cursor.starting_after) == (2, subs[40])
    assert SyncCursor.objects.get(project=alice.project, mode="full", object_type="customer").completed_at

    monkeypatch.setattr(listing.CursorPass, "checkpoint", checkpoint)
    stripe_sandbox.reset_request_stats()
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=150)):  # past the dead-run grace
        resumed = full_run(alice)
    resumed_requests = stripe_sandbox.request_stats()["by_route"]

    assert resumed.resumed_from_id == killed.pk
    killed.refresh_from_db()
    assert killed.status == "failed"
    # Customers were complete: not listed again; subscriptions from page 3 on (pages 3 to 6).
    assert "GET /v1/customers" not in resumed_requests
    assert resumed_requests["GET /v1/subscriptions"] == 4
    assert resumed.counts["subscription"]["checked"] == 40
    resumed_findings = findings()
    no_duplicates()

    transaction.savepoint_rollback(savepoint)
    assert not ReconciliationRun.objects.exists() and not Discrepancy.objects.exists()
    uninterrupted = full_run(alice)

    assert uninterrupted.resumed_from_id is None and uninterrupted.counts["subscription"]["checked"] == 60
    assert (
        findings()
        == resumed_findings
        == {
            ("subscription_status", subs[55], "auto_resolved"),
            ("subscription_status", subs[35], "auto_resolved"),
            ("subscription_status", subs[5], "auto_resolved"),
            ("subscription_items", subs[25], "auto_resolved"),
            ("customer_mapping", world.customers[45], "open"),
        }
    )


# --- faults -----------------------------------------------------------------------------------------
def test_429_with_retry_after_and_500_for_a_while_slow_the_run_but_lose_and_duplicate_nothing(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, fast: None, settings: Any
) -> None:
    settings.RECONCILIATION_PAGE_SIZE = 20
    world = build_world(stripe_sandbox, stripe_client, alice, subscriptions=80, payments=5)
    stripe_sandbox.silent_cancel(world.subscriptions[70])
    stripe_sandbox.silent_reprice(world.subscriptions[10], world.other_price)
    stripe_sandbox.silent_refund(world.charges[2], 1000)
    stripe_sandbox.silent_metadata(world.customers[40], {"user_id": ""})
    stripe_sandbox.silent_delete_customer(world.customers[30])

    savepoint = transaction.savepoint()
    stripe_sandbox.reset_request_stats()
    clean = full_run(alice)
    clean_findings = findings()
    assert len(clean_findings) == 6  # the five changes and the deleted customer's canceled subscription
    assert stripe_sandbox.request_stats()["total"] == clean.stripe_requests
    transaction.savepoint_rollback(savepoint)

    # Stripe rate-limits the listings for three seconds, then the payment listings fail a few times.
    settings.STRIPE_RETRY_BUDGET_SECONDS = 10  # a page may wait out the whole limit
    stripe_sandbox.reset_request_stats()
    stripe_sandbox.set_fault(
        ["/v1/customers", "/v1/subscriptions"], method="GET", status=429, retry_after=1, duration_s=3
    )
    stripe_sandbox.set_fault(["/v1/payment_intents", "/v1/charges"], method="GET", status=500, count=3)
    started = time.monotonic()
    faulted = full_run(alice)
    elapsed = time.monotonic() - started

    stats = stripe_sandbox.request_stats()
    assert stats["faulted"].get("429", 0) >= 1 and stats["faulted"].get("500", 0) == 3
    assert elapsed >= 2  # it waited as Retry-After said, until the limit was over
    assert findings() == clean_findings  # nothing lost
    no_duplicates()  # nothing twice
    assert Discrepancy.objects.count() == len(clean_findings)
    assert faulted.counts == clean.counts and faulted.db_writes == clean.db_writes
    # Every attempt was paced and counted, the faulted ones too, as the sandbox counted them.
    failed_attempts = sum(stats["faulted"].values())
    assert faulted.stripe_requests == clean.stripe_requests + failed_attempts == stats["total"]


# --- isolation --------------------------------------------------------------------------------------
def test_two_projects_on_one_stripe_account_each_see_and_correct_only_their_own(
    alice: Tenant, bob: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, fast: None
) -> None:
    alphas = build_world(stripe_sandbox, stripe_client, alice, subscriptions=40, payments=3, prefix="a_")
    bravos = build_world(stripe_sandbox, stripe_client, bob, subscriptions=30, payments=2, prefix="b_")
    stripe_sandbox.silent_cancel(alphas.subscriptions[3])
    stripe_sandbox.silent_metadata(alphas.customers[4], {"user_id": ""})
    stripe_sandbox.silent_cancel(bravos.subscriptions[5])
    stripe_sandbox.silent_refund(bravos.charges[1])

    alpha_run = full_run(alice)

    assert alpha_run.counts["subscription"]["checked"] == 40 and alpha_run.counts["customer"]["checked"] == 40
    assert alpha_run.counts["payment_intent"]["checked"] == 3 and alpha_run.counts["charge"]["checked"] == 3
    alpha_findings = {
        ("subscription_status", alphas.subscriptions[3], "auto_resolved"),
        ("customer_mapping", alphas.customers[4], "open"),
    }
    assert findings() == alpha_findings
    # Bravo's drift is untouched: its record and its entitlements are as they were.
    assert SubscriptionRecord.objects.get(stripe_subscription_id=bravos.subscriptions[5]).status == "active"
    assert active(bob, bravos.users[5], "pro") and active(bob, bravos.buyers[1], "export")
    assert not active(alice, alphas.users[3], "pro")

    bravo_run = full_run(bob)

    assert bravo_run.counts["subscription"]["checked"] == 30 and bravo_run.counts["customer"]["checked"] == 30
    assert bravo_run.counts["charge"]["checked"] == 2
    bravo_findings = {
        ("subscription_status", bravos.subscriptions[5], "auto_resolved"),
        ("charge_amount_refunded", bravos.charges[1], "auto_resolved"),
    }
    assert findings(bob.project) == bravo_findings and findings(alice.project) == alpha_findings
    assert not active(bob, bravos.users[5], "pro") and not active(bob, bravos.buyers[1], "export")

    # Another project's key can neither read nor resolve alice's discrepancies, nor read her run.
    mapping = Discrepancy.objects.get(kind="customer_mapping")
    listed = bob.client().get(DISCREPANCIES)
    assert listed.status_code == 200
    assert {row["stripe_id"] for row in listed.json()["results"]} == {stripe_id for _, stripe_id, _ in bravo_findings}
    assert bob.client().get(f"{DISCREPANCIES}/{mapping.pk}").status_code == 404
    assert bob.client().get(DISCREPANCIES, {"run": alpha_run.pk}).json()["results"] == []
    assert bob.client().get(f"{RUNS}/{alpha_run.pk}").status_code == 404
    resolve = bob.client().post(
        f"{DISCREPANCIES}/{mapping.pk}/resolve", {"action": "accept_stripe", "note": "not mine"}, format="json"
    )
    assert resolve.status_code == 404 and alphas.customers[4] not in resolve.content.decode()
    mapping.refresh_from_db()
    assert mapping.status == "open"
    assert (
        BillingCustomer.objects.get(project=alice.project, user_id=alphas.users[4]).stripe_customer_id
        == (alphas.customers[4])
    )
    # Its own key can.
    own = alice.client().post(
        f"{DISCREPANCIES}/{mapping.pk}/resolve", {"action": "keep_local", "note": "metadata restored"}, format="json"
    )
    assert own.status_code == 200, own.content


# --- concurrency ------------------------------------------------------------------------------------
@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs handed to the worker (none executes: the test is about starting one)."""
    sent: list[int] = []
    monkeypatch.setattr("apps.reconciliation.services._enqueue", lambda run: sent.append(run.pk))
    return sent


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_api_triggers_for_one_project_start_exactly_one_run(
    alice: Tenant, enqueued: list[int]
) -> None:
    barrier = threading.Barrier(2)
    answers: list[Any] = []
    lock = threading.Lock()

    def trigger(mode: str) -> None:
        try:
            client = alice.client()
            barrier.wait(10)
            response = client.post(RUNS, {"project_id": alice.project.pk, "mode": mode}, format="json")
            with lock:
                answers.append(response)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=trigger, args=(mode,)) for mode in ("full", "incremental")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(response.status_code for response in answers) == [202, 409]
    started = next(response.json() for response in answers if response.status_code == 202)
    refused = next(response.json() for response in answers if response.status_code == 409)
    assert refused["run_id"] == started["id"] and refused["run_url"] == f"{RUNS}/{started['id']}"
    assert list(ReconciliationRun.objects.values_list("pk", flat=True)) == [started["id"]] == enqueued
