"""What a run does with each kind of finding: correct it on its own, or leave it open for finance.

Stripe is the truth for payment state: what a customer is subscribed to and until when, whether a
payment succeeded, how much of it was refunded. Those kinds are corrected automatically, through the
same services the webhooks use (see the comparers). Who a Stripe customer belongs to, and objects
that vanished at Stripe, are decisions about people and money that a run cannot take: finance
resolves them (apps/reconciliation/resolutions.py), and `accept_stripe` there calls the comparer's
`correct`, which does what `accept_stripe` says below. An empty `accept_stripe` means that there is
nothing to apply from Stripe (an append-only ledger cannot be rewritten): finance keeps ours or
ignores the finding, and fixes the cause at Stripe or by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.common.exceptions import Conflict


@dataclass(frozen=True)
class KindPolicy:
    auto_correct: bool
    why: str  # what differs, and why it is (or is not) corrected unattended
    accept_stripe: str = ""  # what accepting Stripe's side does; "" when it cannot be accepted


# fmt: off
POLICY: dict[str, KindPolicy] = {
    # --- subscriptions ----------------------------------------------------------------------------
    "subscription_status": KindPolicy(
        True, "Stripe's status decides what the subscription entitles to: payment state.",
        "apply Stripe's subscription through subscription_apply_snapshot, recompute entitlements"),
    "subscription_items": KindPolicy(
        True, "The prices (and quantities) on the subscription's items: what is paid for.",
        "apply Stripe's subscription through subscription_apply_snapshot, recompute entitlements"),
    "subscription_period_end": KindPolicy(
        True, "The paid period's end, from the items: until when access is paid.",
        "apply Stripe's subscription through subscription_apply_snapshot, recompute entitlements"),
    "subscription_cancel_at_period_end": KindPolicy(
        True, "Whether the subscription ends at the period's end: payment state.",
        "apply Stripe's subscription through subscription_apply_snapshot, recompute entitlements"),
    "subscription_missing_locally": KindPolicy(
        True, "A subscription of one of our users (routed by metadata or customer) that we never recorded: "
        "a lost webhook. Mirrored as its created event would have been.",
        "record Stripe's subscription through subscription_apply_snapshot, recompute entitlements"),
    "subscription_missing_locally_unrouted": KindPolicy(
        False, "A subscription listed for the project that names no user we can find (no user_id metadata, "
        "customer not linked): nobody to entitle.",
        "record it once its customer is linked to a user (else refused)"),
    "subscription_missing_at_stripe": KindPolicy(
        False, "We hold a live subscription that a complete listing at Stripe did not return: deleted, "
        "or moved to another project or account. Ending access is finance's call.",
        "end ours as customer.subscription.deleted would: canceled now, through subscription_apply_snapshot"),
    # --- payment intents ------------------------------------------------------------------------
    "payment_intent_status": KindPolicy(
        True, "Stripe says the payment succeeded and our revenue ledger has no payment for it: "
        "a lost payment_intent.succeeded.",
        "append the payment to the revenue ledger (revenue_payment_record)"),
    "payment_intent_not_succeeded": KindPolicy(
        False, "We recorded a payment (ledger or purchase) for an intent Stripe does not show as succeeded.",
        ""),
    "payment_intent_amount": KindPolicy(
        False, "The amount we recorded for a succeeded payment differs from Stripe's amount received.",
        ""),
    "payment_missing_locally": KindPolicy(
        True, "A succeeded payment made through one of our checkouts (our metadata) with no purchase and "
        "no paid invoice: a lost checkout.session.completed. The user paid and was given nothing.",
        "apply Stripe's checkout session through the checkout completion services; ledger the payment"),
    # --- charges ----------------------------------------------------------------------------------
    "charge_amount_refunded": KindPolicy(
        True, "Stripe refunded more of the charge than our ledger or purchases show: a lost charge.refunded.",
        "append the refund increment (revenue_refund_record), apply it to the purchases, recompute"),
    "charge_refund_reversed": KindPolicy(
        False, "We recorded more refunded than Stripe shows (a refund that failed or was reversed): "
        "refunds only ever grow in our ledger, so this needs a person.",
        ""),
    # --- customers --------------------------------------------------------------------------------
    "customer_mapping": KindPolicy(
        False, "The Stripe customer's metadata names another user or project than our link, or none "
        "(lost). Who a customer is must not change unattended.",
        "move our link to what Stripe's metadata says: the user it names gets the customer, or, if it "
        "names nobody of this project, our row is unlinked"),
    "customer_missing_at_stripe": KindPolicy(
        False, "Our user is linked to a Stripe customer that a complete listing did not return (deleted).",
        "unlink our row, so that the user's next checkout creates a new customer"),
    "customer_missing_locally": KindPolicy(
        False, "A Stripe customer whose metadata names one of our users, not linked to that user "
        "(a customer made outside the service, or a duplicate).",
        "link it to the user its metadata names, if that user has no customer yet"),
}
# fmt: on


class AcceptStripeRefused(Conflict):
    """Accepting Stripe's side of this finding is impossible or would be wrong; the detail says why (409)."""

    default_detail = "Stripe's side of this finding cannot be accepted."


def policy_for(kind: str) -> KindPolicy:
    """The kind's policy; an unknown kind is a bug in a comparer (KeyError), never silently open."""
    return POLICY[kind]
