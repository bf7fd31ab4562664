"""The subscription write split in two: a decision read without a lock (so that the Stripe fetch a
same-second tie needs is made while nothing is locked), and an apply that decides again under the
row lock and never guesses a tie."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.entitlements.models import SubscriptionRecord
from apps.entitlements.services import SubscriptionTie, subscription_apply_snapshot, subscription_event_decide
from tests.conftest import Tenant
from tests.entitlements.conftest import NOW, apply, subscription_snapshot, ts

pytestmark = pytest.mark.django_db

T = ts(NOW)


def decide(created: int, event_id: str) -> str:
    return subscription_event_decide(subscription_id="sub_1", event_created=created, event_id=event_id)


def test_the_decision_reads_the_last_applied_event(alice: Tenant, pro: str) -> None:
    assert decide(T, "evt_1") == "new"
    apply(alice, subscription_snapshot(), T, "evt_1")
    assert decide(T + 1, "evt_2") == "apply"
    assert decide(T - 1, "evt_0") == "stale"
    assert decide(T, "evt_1") == "apply"  # the same event again: idempotent
    assert decide(T, "evt_other") == "tie"  # only Stripe's current object can order these two


def test_a_tie_found_under_the_lock_is_refused_not_guessed(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot(status="trialing"), T, "evt_1")
    # In a savepoint, as the event's transaction would be: the refusal rolls back what it locked.
    with pytest.raises(SubscriptionTie), transaction.atomic():
        subscription_apply_snapshot(
            project=alice.project, user_id="u1", data=subscription_snapshot(status="past_due"), event_created=T,
            event_id="evt_2",
        )  # fmt: skip
    record = SubscriptionRecord.objects.get()
    assert (record.status, record.last_event_id) == ("trialing", "evt_1")


def test_stripes_current_object_wins_the_tie(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot(status="trialing"), T, "evt_1")
    changes, note = subscription_apply_snapshot(
        project=alice.project, user_id="u1", data=subscription_snapshot(status="active"), event_created=T,
        event_id="evt_2", current=True,
    )  # fmt: skip
    assert note == ""
    assert changes == ["subscription sub_1 status: trialing -> active"]
    assert SubscriptionRecord.objects.get().last_event_id == "evt_2"


def test_a_newer_event_applied_meanwhile_still_wins_over_current_data(alice: Tenant, pro: str) -> None:
    apply(alice, subscription_snapshot(status="canceled"), T + 5, "evt_newer")
    changes, note = subscription_apply_snapshot(
        project=alice.project, user_id="u1", data=subscription_snapshot(status="active"), event_created=T,
        event_id="evt_2", current=True,
    )  # fmt: skip
    assert (changes, note) == ([], "stale: evt_newer (newer) is already applied")
    assert SubscriptionRecord.objects.get().status == "canceled"
