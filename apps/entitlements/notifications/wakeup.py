"""Waking the fulfillment worker once notifications are committed: one publish per burst, off-thread.

apps.entitlements.notifications.outbox arms fulfillment_wake() on commit of every transaction that
queued deliveries. It pokes a debounced waker (apps/common/wakeup.py), whose thread publishes one
`fulfillment.deliver` message per burst, so a projection change costs its request a flag, not a
broker round trip. It never raises: a publish that fails (the broker is away) is counted and logged,
and beat's `deliver-notifications` poll (every FULFILLMENT_POLL_INTERVAL_SECONDS) delivers what a
lost wake-up leaves behind.

In eager mode (the test suite, CELERY_TASK_ALWAYS_EAGER) the worker runs at once, in the caller, on
its connection, as the webhook drain's wake-up does.
"""

from __future__ import annotations

import structlog

from apps.common.wakeup import DebouncedWaker
from apps.entitlements.notifications import metrics

log = structlog.get_logger("billing.notifications")

# Folds a burst of commits (a webhook batch recomputing many users) into one publish, short next to
# the time a receiver takes to answer.
WAKE_DEBOUNCE_SECONDS = 0.05


def _publish() -> None:
    try:
        from apps.entitlements.tasks import deliver

        deliver.apply_async()
    except Exception:
        metrics.wakeups.labels(outcome="failed").inc()
        log.warning("fulfillment_wakeup_failed", exc_info=True)
    else:
        metrics.wakeups.labels(outcome="published").inc()


# The lambda looks _publish up at each call, so that a test may swap it.
_waker = DebouncedWaker(
    thread_name="fulfillment-waker", publish=lambda: _publish(), debounce_seconds=WAKE_DEBOUNCE_SECONDS
)


def fulfillment_wake() -> None:
    """Asks for a delivery run soon; called on commit of notifications. Never raises."""
    try:
        from apps.entitlements.tasks import deliver

        if deliver.app.conf.task_always_eager:
            _publish()  # runs the worker here and now
            return
        _waker.poke()
    except Exception:
        # After the commit the change is safe; the poll delivers what this wake-up would have.
        log.warning("fulfillment_wakeup_failed", exc_info=True)
