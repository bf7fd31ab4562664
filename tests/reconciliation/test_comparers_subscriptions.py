"""Subscriptions compared with Stripe's: each kind of drift found in one query per page, corrected
through subscription_apply_snapshot (so the entitlement check follows), audited, and then gone."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
import stripe
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.common.models import AuditLog
from apps.common.stripe_gateway.client import as_dict
from apps.entitlements.models import SubscriptionRecord
from apps.entitlements.projection import entitlements_recompute
from apps.entitlements.selectors import entitlement_check
from apps.entitlements.services import subscription_apply_snapshot
from apps.reconciliation.comparers import COMPARERS, comparer_for
from apps.reconciliation.comparers.base import Finding
from apps.reconciliation.comparers.common import ObservedFinding
from apps.reconciliation.comparers.subscriptions import SubscriptionComparer
from apps.reconciliation.models import ReconciliationRun
from apps.reconciliation.policy import POLICY, AcceptStripeRefused
from tests.conftest import Tenant, committed
from tests.factories import BillingCustomerFactory, PriceFeatureFactory, ProjectFactory, SubscriptionRecordFactory
from tests.sandbox_objects import sandbox_subscription

DAY = 86400
comparer = SubscriptionComparer()


def _now() -> int:
    return int(time.time())


# Periods are fixed for the module, so that one subscription built twice is the same object.
BASE = _now()


def snapshot(
    sub_id: str = "sub_1",
    *,
    status: str = "active",
    prices: tuple[str, ...] = ("price_pro",),
    quantity: int = 1,
    period_end: int | None = None,
    user_id: str = "u1",
    customer: str = "cus_1",
    **extra: Any,
) -> dict[str, Any]:
    start = BASE - 10 * DAY
    end = period_end if period_end is not None else BASE + 20 * DAY
    items = [
        {"price": {"id": price}, "quantity": quantity, "current_period_start": start, "current_period_end": end}
        for price in prices
    ]
    return {
        "id": sub_id,
        "object": "subscription",
        "status": status,
        "customer": customer,
        "start_date": start,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "metadata": {"project": "alpha", "user_id": user_id},
        "items": {"object": "list", "data": items},
        **extra,
    }


def record(tenant: Tenant, data: dict[str, Any], *, user_id: str = "u1", created: int | None = None) -> None:
    """Our record as a webhook left it: the snapshot applied by an event some minutes ago."""
    subscription_apply_snapshot(
        project=tenant.project,
        user_id=user_id,
        data=data,
        event_created=created if created is not None else _now() - 600,
        event_id=f"evt_{data['id']}",
    )
    entitlements_recompute(project=tenant.project, user_id=user_id)


@pytest.fixture
def features(alice: Tenant) -> None:
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_pro", feature_code="pro")
    PriceFeatureFactory.create(project=alice.project, stripe_price_id="price_export", feature_code="export")


def entitled(tenant: Tenant, feature: str, user_id: str = "u1") -> bool:
    return entitlement_check(project_id=tenant.project.pk, user_id=user_id, feature_code=feature)[0]


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


# --- detection ------------------------------------------------------------------------------------
def test_a_page_of_fifty_in_step_with_stripe_finds_nothing_in_one_query(alice: Tenant, features: None) -> None:
    page = [snapshot(f"sub_{n}", user_id=f"u{n}") for n in range(50)]
    for data in page:
        record(alice, data, user_id=data["metadata"]["user_id"])
    with CaptureQueriesContext(connection) as queries:
        assert comparer.compare_page(alice.project, page) == []
    assert len(queries) == 1


def test_a_page_with_drift_still_costs_one_query(alice: Tenant, features: None) -> None:
    page = [snapshot(f"sub_{n}", user_id=f"u{n}") for n in range(50)]
    for data in page:
        record(alice, data, user_id=data["metadata"]["user_id"])
    page[7] = snapshot("sub_7", user_id="u7", status="canceled", ended_at=_now() - DAY)
    page[9] = snapshot("sub_9", user_id="u9", prices=("price_export",))
    with CaptureQueriesContext(connection) as queries:
        findings = comparer.compare_page(alice.project, page)
    assert len(queries) == 1
    assert sorted((f.kind, f.stripe_id, f.user_id) for f in findings) == [
        ("subscription_items", "sub_9", "u9"),
        ("subscription_status", "sub_7", "u7"),
    ]


def test_each_compared_field_is_its_own_kind_with_only_the_differing_values(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    end = _now() + 50 * DAY
    moved = snapshot(status="past_due", prices=("price_pro", "price_export"), period_end=end, cancel_at_period_end=True)
    findings = {f.kind: f for f in comparer.compare_page(alice.project, [moved])}
    assert set(findings) == {
        "subscription_status",
        "subscription_items",
        "subscription_period_end",
        "subscription_cancel_at_period_end",
    }
    assert (findings["subscription_status"].local_value, findings["subscription_status"].stripe_value) == (
        {"status": "active"},
        {"status": "past_due"},
    )
    items = findings["subscription_items"]
    assert items.local_value == {"price_ids": ["price_pro"], "quantities": {"price_pro": 1}}
    assert items.stripe_value == {
        "price_ids": ["price_export", "price_pro"],
        "quantities": {"price_export": 1, "price_pro": 1},
    }
    assert findings["subscription_period_end"].stripe_value == {
        "current_period_end": dt.datetime.fromtimestamp(end, tz=dt.UTC).isoformat()
    }
    assert findings["subscription_cancel_at_period_end"].local_value == {"cancel_at_period_end": False}
    assert all(f.stripe_object is moved and f.user_id == "u1" for f in findings.values())


def test_a_quantity_change_alone_is_an_items_finding(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    finding = only(comparer.compare_page(alice.project, [snapshot(quantity=3)]))
    assert (finding.kind, finding.local_value, finding.stripe_value) == (
        "subscription_items",
        {"quantities": {"price_pro": 1}},
        {"quantities": {"price_pro": 3}},
    )


def test_a_record_without_a_stored_snapshot_is_compared_on_prices_only(alice: Tenant) -> None:
    # A row written before snapshots were kept: its quantities are unknown, not different.
    end = dt.datetime.fromtimestamp(BASE + 20 * DAY, tz=dt.UTC)
    SubscriptionRecordFactory.create(
        project=alice.project,
        stripe_subscription_id="sub_1",
        user_id="u1",
        price_ids=["price_pro"],
        current_period_end=end,
    )
    assert comparer.compare_page(alice.project, [snapshot(quantity=4, period_end=int(end.timestamp()))]) == []


def test_subscriptions_we_never_recorded_are_routed_by_metadata_else_by_customer(alice: Tenant) -> None:
    BillingCustomerFactory.create(project=alice.project, user_id="u2", stripe_customer_id="cus_2")
    by_metadata = snapshot("sub_a", user_id="u1")
    by_customer = {**snapshot("sub_b", customer="cus_2"), "metadata": {}}
    nobody = {**snapshot("sub_c", customer="cus_unknown"), "metadata": {}}
    with CaptureQueriesContext(connection) as queries:
        findings = comparer.compare_page(alice.project, [by_metadata, by_customer, nobody])
    assert len(queries) == 2  # the page, and the customers of the two without our metadata
    assert sorted((f.stripe_id, f.kind, f.user_id) for f in findings) == [
        ("sub_a", "subscription_missing_locally", "u1"),
        ("sub_b", "subscription_missing_locally", "u2"),
        ("sub_c", "subscription_missing_locally_unrouted", ""),
    ]
    assert findings[0].local_value is None
    assert findings[0].stripe_value["status"] == "active"
    assert POLICY["subscription_missing_locally"].auto_correct
    assert not POLICY["subscription_missing_locally_unrouted"].auto_correct


def test_another_projects_record_of_the_same_id_is_not_compared(alice: Tenant, features: None) -> None:
    other = ProjectFactory.create()
    SubscriptionRecordFactory.create(project=other, stripe_subscription_id="sub_1", status="canceled")
    finding = only(comparer.compare_page(alice.project, [snapshot()]))
    assert finding.kind == "subscription_missing_locally"
    with pytest.raises(AcceptStripeRefused):
        comparer.correct(alice.project, finding)
    assert SubscriptionRecord.objects.get().project == other


def test_live_records_a_complete_listing_did_not_return_are_missing_at_stripe(alice: Tenant) -> None:
    SubscriptionRecordFactory.create(project=alice.project, stripe_subscription_id="sub_seen")
    SubscriptionRecordFactory.create(project=alice.project, stripe_subscription_id="sub_gone", user_id="u9")
    SubscriptionRecordFactory.create(project=alice.project, stripe_subscription_id="sub_old", status="canceled")
    SubscriptionRecordFactory.create(stripe_subscription_id="sub_bobs")  # another project's
    finding = only(list(comparer.missing_at_stripe(alice.project, {"sub_seen"})))
    assert (finding.kind, finding.stripe_id, finding.user_id) == ("subscription_missing_at_stripe", "sub_gone", "u9")
    assert (finding.local_value, finding.stripe_value, finding.stripe_object) == ({"status": "active"}, None, None)
    assert not POLICY[finding.kind].auto_correct


def test_records_made_after_the_listing_began_are_not_called_missing(alice: Tenant) -> None:
    SubscriptionRecordFactory.create(project=alice.project, stripe_subscription_id="sub_before")
    dead = ReconciliationRun.objects.create(project=alice.project, trigger="scheduled", mode="full", status="failed")
    running = ReconciliationRun.objects.create(
        project=alice.project, trigger="scheduled", mode="full", resumed_from=dead
    )
    # The dead run began the listing an hour ago; the one that resumed it, just now.
    ReconciliationRun.objects.filter(pk=dead.pk).update(started_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    SubscriptionRecord.objects.update(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    SubscriptionRecordFactory.create(project=alice.project, stripe_subscription_id="sub_during")
    SubscriptionRecord.objects.filter(stripe_subscription_id="sub_during").update(
        created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    )
    assert running.started_at > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert [f.stripe_id for f in comparer.missing_at_stripe(alice.project, set())] == ["sub_before"]


# --- corrections -----------------------------------------------------------------------------------
def test_a_cancel_behind_our_back_is_corrected_through_the_snapshot_service(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    assert entitled(alice, "pro")  # and now cached
    canceled = snapshot(status="canceled", canceled_at=_now() - 60, ended_at=_now() - 60)
    finding = only(comparer.compare_page(alice.project, [canceled]))
    assert POLICY[finding.kind].auto_correct
    with committed():
        changes = comparer.correct(alice.project, finding)
    assert "subscription sub_1 status: active -> canceled" in changes
    assert not entitled(alice, "pro")  # the cache was invalidated on commit
    sub = SubscriptionRecord.objects.get()
    assert sub.status == "canceled"
    assert sub.last_event_id.startswith("reconciliation:")
    audit = AuditLog.objects.get(action="reconciliation.correct")
    assert (audit.actor, audit.target, audit.project_id) == ("reconciliation", "subscription:sub_1", alice.project.pk)
    assert (audit.before or {}).get("status") == "active"
    assert (audit.after or {}).get("status") == "canceled"
    assert audit.reason.startswith("subscription_status: ")
    assert comparer.compare_page(alice.project, [canceled]) == []


def test_a_reprice_moves_the_entitlement_to_the_new_prices_feature(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    repriced = snapshot(prices=("price_export",))
    finding = only(comparer.compare_page(alice.project, [repriced]))
    with committed():
        comparer.correct(alice.project, finding)
    assert (entitled(alice, "pro"), entitled(alice, "export")) == (False, True)
    assert comparer.compare_page(alice.project, [repriced]) == []


def test_a_moved_period_end_moves_the_entitlements_end(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    ended = _now() - 3600
    moved = snapshot(period_end=ended)
    finding = only(comparer.compare_page(alice.project, [moved]))
    assert finding.kind == "subscription_period_end"
    with committed():
        comparer.correct(alice.project, finding)
    assert not entitled(alice, "pro")
    assert SubscriptionRecord.objects.get().current_period_end == dt.datetime.fromtimestamp(ended, tz=dt.UTC)


def test_the_second_finding_of_one_subscription_has_nothing_left_to_change(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    drifted = snapshot(status="canceled", ended_at=_now() - 60, prices=("price_export",))
    first, second = comparer.compare_page(alice.project, [drifted])
    assert comparer.correct(alice.project, first)
    assert comparer.correct(alice.project, second) == []  # the first applied the whole object
    assert AuditLog.objects.filter(action="reconciliation.correct").count() == 1


def test_a_newer_event_applied_since_the_listing_wins_over_the_correction(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    finding = only(comparer.compare_page(alice.project, [snapshot(status="canceled", ended_at=_now() - 60)]))
    # A webhook delivered after the page was listed: it is newer than what the run saw.
    record(alice, snapshot(status="active", period_end=_now() + 40 * DAY), created=_now() + 5)
    assert comparer.correct(alice.project, finding) == []
    assert SubscriptionRecord.objects.get().status == "active"
    assert not AuditLog.objects.filter(action="reconciliation.correct").exists()


def test_an_older_event_delivered_after_the_correction_cannot_undo_it(alice: Tenant, features: None) -> None:
    record(alice, snapshot(), created=_now() - 600)
    finding = only(comparer.compare_page(alice.project, [snapshot(status="canceled", ended_at=_now() - 60)]))
    comparer.correct(alice.project, finding)
    changes, note = subscription_apply_snapshot(
        project=alice.project, user_id="u1", data=snapshot(), event_created=_now() - 300, event_id="evt_late"
    )
    assert changes == [] and note.startswith("stale")
    assert SubscriptionRecord.objects.get().status == "canceled"


def test_an_event_of_the_observed_second_leaves_the_decision_to_the_next_run(alice: Tenant, features: None) -> None:
    finding = only(comparer.compare_page(alice.project, [snapshot(status="canceled", ended_at=_now() - 60)]))
    assert finding.kind == "subscription_missing_locally"
    observed = finding.observed_at  # type: ignore[attr-defined]
    record(alice, snapshot(), created=observed)  # a real event, of that very second
    assert comparer.correct(alice.project, finding) == []
    assert SubscriptionRecord.objects.get().status == "active"


def test_a_subscription_we_never_recorded_is_mirrored_and_entitles(alice: Tenant, features: None) -> None:
    BillingCustomerFactory.create(project=alice.project, user_id="u2", stripe_customer_id="cus_2")
    data = {**snapshot(customer="cus_2"), "metadata": {}}
    finding = only(comparer.compare_page(alice.project, [data]))
    with committed():
        changes = comparer.correct(alice.project, finding)
    assert changes == ["subscription sub_1 recorded as active"]
    assert entitled(alice, "pro", user_id="u2")
    assert AuditLog.objects.get(action="reconciliation.correct").before is None
    assert comparer.compare_page(alice.project, [data]) == []


def test_an_unrouted_one_is_recorded_by_accept_stripe_once_its_customer_is_linked(
    alice: Tenant, features: None
) -> None:
    data = {**snapshot(customer="cus_3"), "metadata": {}}
    finding = only(comparer.compare_page(alice.project, [data]))
    with pytest.raises(AcceptStripeRefused):
        comparer.correct(alice.project, finding)
    BillingCustomerFactory.create(project=alice.project, user_id="u3", stripe_customer_id="cus_3")
    comparer.correct(alice.project, finding)
    assert SubscriptionRecord.objects.get().user_id == "u3"


def test_accepting_missing_at_stripe_ends_ours_as_a_deletion_would(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    assert entitled(alice, "pro")
    finding = only(list(comparer.missing_at_stripe(alice.project, set())))
    with committed():
        changes = comparer.correct(alice.project, finding)
    assert "subscription sub_1 status: active -> canceled" in changes
    sub = SubscriptionRecord.objects.get()
    assert (sub.status, sub.price_ids, sub.ended_at is not None) == ("canceled", ["price_pro"], True)
    assert not entitled(alice, "pro")
    assert list(comparer.missing_at_stripe(alice.project, set())) == []
    assert comparer.correct(alice.project, finding) == []  # ended already: its end is not moved
    assert (AuditLog.objects.get(action="reconciliation.correct").after or {}).get("status") == "canceled"


def test_accept_stripe_without_the_object_reads_stripes_current_one(
    alice: Tenant, features: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A finding rebuilt from a stored discrepancy carries no object: Stripe is asked for it.
    record(alice, snapshot())
    asked: list[tuple[str, str]] = []

    def retrieve(*, project_slug: str | None, object_type: str, object_id: str) -> dict[str, Any]:
        asked.append((object_type, object_id))
        return snapshot(status="canceled", ended_at=_now() - 60)

    monkeypatch.setattr("apps.common.stripe_gateway.object_retrieve", retrieve)
    stored = Finding(kind="subscription_status", object_type="subscription", stripe_id="sub_1", user_id="u1")
    assert comparer_for("subscription").correct(alice.project, stored)
    assert asked == [("subscription", "sub_1")]
    assert SubscriptionRecord.objects.get().status == "canceled"


def test_the_comparers_run_customers_first_and_are_found_by_object_type() -> None:
    assert [c.object_type for c in COMPARERS] == ["customer", "subscription", "payment_intent", "charge"]
    with pytest.raises(KeyError):
        comparer_for("invoice")


# --- with the sandbox's own objects -----------------------------------------------------------------
def _listed(stripe_client: stripe.StripeClient) -> list[dict[str, Any]]:
    # Plain dicts as the gateway hands them to the run (as_dict: JSON types only).
    return [as_dict(item) for item in stripe_client.v1.subscriptions.list(params={"status": "all"}).data]


def test_a_sandbox_subscription_listed_through_the_sdk_compares_and_corrects(
    alice: Tenant, stripe_client: stripe.StripeClient
) -> None:
    sub_id, price_id = sandbox_subscription(stripe_client, user_id="u1")
    PriceFeatureFactory.create(project=alice.project, stripe_price_id=price_id, feature_code="pro")
    listed = _listed(stripe_client)
    data = next(obj for obj in listed if obj["id"] == sub_id)
    record(alice, data)
    assert comparer.compare_page(alice.project, [data]) == []
    stripe_client.v1.subscriptions.cancel(sub_id)
    listed = _listed(stripe_client)
    canceled = next(obj for obj in listed if obj["id"] == sub_id)
    finding = only(comparer.compare_page(alice.project, [canceled]))
    assert finding.stripe_value == {"status": "canceled"}
    with committed():
        comparer.correct(alice.project, finding)
    assert not entitled(alice, "pro")
    assert comparer.compare_page(alice.project, [canceled]) == []


def test_accepting_missing_at_stripe_is_refused_when_stripe_still_has_it(alice: Tenant, features: None) -> None:
    record(alice, snapshot())
    finding = only(list(comparer.missing_at_stripe(alice.project, set())))
    # As the resolve service passes it: Stripe's answer, read again (here: routed to another project).
    found = ObservedFinding(**{**vars(finding), "stripe_object": snapshot(user_id="x")}, observed_at=_now())
    with pytest.raises(AcceptStripeRefused, match="Stripe still has sub_1"):
        comparer.correct(alice.project, found)
    assert SubscriptionRecord.objects.get().status == "active"
