"""Entitlement windows from each source, evaluated at any instant."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from apps.entitlements.grants import grant_create, grants_revoke
from apps.entitlements.projection import entitlements_recompute
from apps.entitlements.selectors import entitlement_check, entitlement_list
from apps.entitlements.services import purchase_record, purchase_refund_apply
from tests.conftest import Tenant, committed
from tests.entitlements.conftest import DAY, NOW, apply, subscription_snapshot, ts

pytestmark = pytest.mark.django_db


def check(tenant: Tenant, feature: str = "pro", at: dt.datetime | None = None, user: str = "u1") -> bool:
    return entitlement_check(project_id=tenant.project.pk, user_id=user, feature_code=feature, at=at or NOW)[0]


def test_an_active_subscription_entitles_until_its_items_period_end(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot(period_end=ts(NOW) + 5 * DAY), ts(NOW), "evt_1")
    active, valid_to = entitlement_check(project_id=alice.project.pk, user_id="u1", feature_code="pro", at=NOW)
    assert active is True
    assert valid_to == NOW + dt.timedelta(days=5)
    assert check(alice, at=NOW + dt.timedelta(days=5, seconds=1)) is False


def test_a_trialing_subscription_entitles(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot(status="trialing"), ts(NOW), "evt_1")
    assert check(alice) is True


@pytest.mark.parametrize("status", ["incomplete", "unpaid", "incomplete_expired", "paused"])
def test_unpaid_states_do_not_entitle(alice: Tenant, pro: str, status: str) -> None:
    apply(alice, subscription_snapshot(status=status), ts(NOW), "evt_1")
    assert check(alice) is False


def test_past_due_entitles_only_within_the_projects_grace(alice: Tenant, pro: str) -> None:
    alice.project.past_due_grace_days = 2
    alice.project.save()
    apply(alice, subscription_snapshot(status="past_due"), ts(NOW), "evt_1")
    assert check(alice, at=NOW + dt.timedelta(days=1)) is True
    assert check(alice, at=NOW + dt.timedelta(days=2, seconds=1)) is False


def test_a_canceled_subscription_answers_as_of_its_past(alice: Tenant, pro: str) -> None:
    ended = ts(NOW) - DAY
    apply(alice, subscription_snapshot(status="canceled", ended_at=ended, canceled_at=ended), ts(NOW), "evt_1")
    assert check(alice) is False
    assert check(alice, at=NOW - dt.timedelta(days=3)) is True


def test_an_unmapped_price_entitles_to_nothing(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot(price="price_other"), ts(NOW), "evt_1")
    assert entitlement_list(project_id=alice.project.pk, user_id="u1", at=NOW) == []


def test_a_stale_snapshot_never_overwrites_newer_state(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot(status="canceled", ended_at=ts(NOW)), ts(NOW), "evt_new")
    assert apply(alice, subscription_snapshot(status="active"), ts(NOW) - 60, "evt_old") == []
    assert check(alice, at=NOW + dt.timedelta(hours=1)) is False


def test_a_purchase_entitles_for_its_duration_and_a_life_one_forever(alice: Tenant, pro: str) -> None:
    purchase_record(
        project=alice.project,
        user_id="u1",
        price_id="price_export",
        amount=4900,
        currency="usd",
        paid_at=NOW,
        payment_intent_id="pi_1",
        checkout_session_id="cs_1",
    )
    entitlements_recompute(project=alice.project, user_id="u1")
    assert check(alice, "export", NOW + dt.timedelta(days=29)) is True
    assert check(alice, "export", NOW + dt.timedelta(days=31)) is False


def test_a_purchase_is_recorded_once_per_session(alice: Tenant, pro: str) -> None:
    args = {
        "project": alice.project,
        "user_id": "u1",
        "price_id": "price_export",
        "amount": 4900,
        "currency": "usd",
        "paid_at": NOW,
        "payment_intent_id": "pi_1",
        "checkout_session_id": "cs_1",
    }
    assert purchase_record(**args) != []  # type: ignore[arg-type]
    assert purchase_record(**args) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("refunded", "revoke_on_partial", "still_active"), [(4900, False, False), (1000, False, True), (1000, True, False)]
)
def test_refunds_end_a_purchase_in_full_and_partially_only_if_the_project_says_so(
    alice: Tenant, pro: str, refunded: int, revoke_on_partial: bool, still_active: bool
) -> None:
    alice.project.revoke_on_partial_refund = revoke_on_partial
    alice.project.save()
    purchase_record(
        project=alice.project,
        user_id="u1",
        price_id="price_export",
        amount=4900,
        currency="usd",
        paid_at=NOW - dt.timedelta(days=1),
        payment_intent_id="pi_1",
        checkout_session_id="cs_1",
    )
    purchase_refund_apply(project=alice.project, payment_intent_id="pi_1", amount_refunded=refunded, refunded_at=NOW)
    entitlements_recompute(project=alice.project, user_id="u1")
    assert check(alice, "export", NOW + dt.timedelta(hours=1)) is still_active


def test_a_grant_is_active_only_inside_its_window_and_a_revoke_ends_it(alice: Tenant, pro: str) -> None:
    with time_machine.travel(NOW, tick=False):
        grant_create(
            project=alice.project,
            user_id="u1",
            feature_code="pro",
            granted_by="support",
            reason="pilot",
            valid_from=NOW + dt.timedelta(days=1),
            valid_to=NOW + dt.timedelta(days=3),
        )
        assert check(alice, at=NOW) is False
        assert check(alice, at=NOW + dt.timedelta(days=2)) is True
        assert check(alice, at=NOW + dt.timedelta(days=4)) is False
    with time_machine.travel(NOW + dt.timedelta(days=2), tick=False), committed():
        assert grants_revoke(project=alice.project, user_id="u1", feature_code="pro", revoked_by="s", reason="r") == 1
    with time_machine.travel(NOW + dt.timedelta(days=2), tick=False):
        assert check(alice, at=NOW + dt.timedelta(days=2, seconds=1)) is False
        assert check(alice, at=NOW + dt.timedelta(days=1, hours=1)) is True  # history stays


def test_sources_combine_and_the_latest_end_wins(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot(period_end=ts(NOW) + 5 * DAY), ts(NOW), "evt_1")
    with time_machine.travel(NOW, tick=False):
        grant_create(project=alice.project, user_id="u1", feature_code="pro", granted_by="s", reason="r")
    assert entitlement_check(project_id=alice.project.pk, user_id="u1", feature_code="pro", at=NOW) == (True, None)
    sources = {row["source"] for row in entitlement_list(project_id=alice.project.pk, user_id="u1", at=NOW)}
    assert sources == {"subscription", "grant"}


def test_past_due_grace_runs_from_the_failed_renewal_even_when_learnt_from_an_older_event(
    alice: Tenant, pro: str
) -> None:
    alice.project.past_due_grace_days = 2
    alice.project.save()
    renewal = NOW - dt.timedelta(days=1)
    # Today's past_due state arrives under an older event (as after a same-second refetch).
    snapshot = subscription_snapshot(status="past_due", start=ts(renewal) - 30 * DAY, period_end=ts(renewal) + 30 * DAY)
    snapshot["items"]["data"][0]["current_period_start"] = ts(renewal)
    apply(alice, snapshot, ts(NOW) - 20 * DAY, "evt_old")
    assert check(alice, at=renewal + dt.timedelta(days=1, hours=23)) is True
    assert check(alice, at=renewal + dt.timedelta(days=2, hours=1)) is False
