"""The policy table and the comparers agree: every kind a comparer can report has a policy, every
policy is a kind some comparer reports, and whatever is corrected unattended can be accepted."""

from __future__ import annotations

from apps.reconciliation.comparers import customers, payments, subscriptions
from apps.reconciliation.policy import POLICY

PREFIXES = ("subscription_", "payment_", "charge_", "customer_")


def _kinds() -> set[str]:
    kinds: set[str] = set()
    for module in (subscriptions, payments, customers):
        kinds |= {
            value
            for name, value in vars(module).items()
            if name.isupper()
            and isinstance(value, str)
            and value.startswith(("subscription_", "payment", "charge_", "customer_"))
        }
    return kinds


def test_every_kind_the_comparers_report_has_exactly_one_policy() -> None:
    assert _kinds() == set(POLICY)


def test_what_is_corrected_unattended_says_what_the_correction_does() -> None:
    assert all(policy.accept_stripe for policy in POLICY.values() if policy.auto_correct)
    assert all(policy.why for policy in POLICY.values())


def test_stripe_is_the_truth_for_payment_state_and_people_decide_the_rest() -> None:
    auto = {kind for kind, policy in POLICY.items() if policy.auto_correct}
    assert auto == {
        "subscription_status",
        "subscription_items",
        "subscription_period_end",
        "subscription_cancel_at_period_end",
        "subscription_missing_locally",
        "payment_intent_status",
        "payment_missing_locally",
        "charge_amount_refunded",
    }
