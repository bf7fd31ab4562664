"""The test clock: moving "now" forward runs every time-based transition on the way, in order."""

from __future__ import annotations

from collections.abc import Callable

from . import billing, checkout_lifecycle, context
from .sandbox import Sandbox
from .store import JsonObject

Action = tuple[int, int, Callable[[], None]]  # (when, tie-break priority, what)


def _pending_actions(sb: Sandbox, until: int) -> list[Action]:
    store = sb.store
    actions: list[Action] = []
    for sub in store.newest_first("subscription"):
        actions.extend(_subscription_actions(sb, sub))
    for invoice in store.newest_first("invoice"):
        attempt_at = invoice.get("next_payment_attempt")
        if invoice["status"] == "open" and attempt_at is not None:
            actions.append((attempt_at, 3, _bind(billing.retry_invoice, sb, invoice)))
    for session in store.newest_first("checkout.session"):
        if session["status"] == "open":
            actions.append((session["expires_at"], 4, _expiry(sb, session)))
    return [action for action in actions if action[0] <= until]


def _bind(action: Callable[[Sandbox, JsonObject], object], sb: Sandbox, obj: JsonObject) -> Callable[[], None]:
    def run() -> None:
        action(sb, obj)

    return run


def _subscription_actions(sb: Sandbox, sub: JsonObject) -> list[Action]:
    status = sub["status"]
    if status == "trialing":
        actions: list[Action] = []
        meta = sb.store.meta(sub["id"])
        if not meta.get("trial_will_end_sent"):
            notice_at = max(sub["trial_end"] - billing.TRIAL_WILL_END_NOTICE_S, sub["trial_start"])

            def notify(s: JsonObject = sub) -> None:
                sb.store.meta(s["id"])["trial_will_end_sent"] = True
                sb.emit("customer.subscription.trial_will_end", s)

            actions.append((notice_at, 0, notify))
        actions.append((sub["trial_end"], 1, lambda: _period_boundary(sb, sub, sub["trial_end"])))
        return actions
    if status in ("active", "past_due"):
        end = billing.current_period_end(sub)
        return [(end, 2, lambda: _period_boundary(sb, sub, end))]
    return []


def _period_boundary(sb: Sandbox, sub: JsonObject, at: int) -> None:
    if sub["cancel_at_period_end"]:
        billing.cancel_subscription(sb, sub)
        return
    billing.start_new_period(sb, sub, at, "subscription_cycle")


def _expiry(sb: Sandbox, session: JsonObject) -> Callable[[], None]:
    # At its own expires_at, not "now": the recovery URL's 30 days count from there.
    def run() -> None:
        checkout_lifecycle.expire(sb, session, session["expires_at"])

    return run


def advance_to(sb: Sandbox, target: int) -> int:
    """Run all transitions due up to ``target`` in time order, then set "now" to it.
    Returns how many transitions ran."""
    ran = 0
    with context.automatic():
        while True:
            actions = _pending_actions(sb, target)
            if not actions:
                break
            when, _, action = min(actions, key=lambda a: (a[0], a[1]))
            sb.store.move_clock_to(when)
            action()
            ran += 1
            if ran > 10000:
                raise RuntimeError("clock advance did not converge")
    sb.store.move_clock_to(target)
    return ran
