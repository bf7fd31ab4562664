"""Waking a drain once events are stored: one broker publish per burst, never on the request thread.

The webhook view's ack is verify, insert, commit; the commit arms ledger_wake() (transaction.on_commit),
which only pokes a debounced waker (apps/common/wakeup.py): a daemon thread of the process lets
WAKE_DEBOUNCE_SECONDS of further commits gather, then publishes one `webhooks.drain_ledger` message.
A commit that lands after the waker cleared its flag (just before publishing) gets a publish of
its own, so every stored row is committed before some publish the drain sees (no wake-up is lost
to the debounce). At 300 events/s a process publishes about 1/WAKE_DEBOUNCE_SECONDS messages/s instead of 300.

Why this wake-up rather than the others the issue names:
- PostgreSQL LISTEN/NOTIFY would add a statement to every ack's transaction (and NOTIFY takes a
  cluster-wide lock at commit), and every worker would need a connection parked in LISTEN beside
  Celery's own loop; it also does nothing on SQLite (`make run` without DATABASE_URL).
- A short poll costs a query per interval per worker forever and adds the interval to the latency.
- This keeps Celery as the only way work reaches a worker, works with any database and broker, and
  costs the request thread a flag.

A publish that fails (the broker is down), or a process that dies between a commit and its publish,
leaves rows `received`: the beat's periodic drain (every 30 s) and the sweeper take them.

In eager mode (the test suite, CELERY_TASK_ALWAYS_EAGER) the drain runs at once, in the caller:
a thread would run it on another database connection, outside the caller's transaction.
"""

from __future__ import annotations

import structlog

from apps.common.wakeup import DebouncedWaker
from apps.webhooks import metrics

log = structlog.get_logger("billing.webhooks")

# Long enough to fold a burst into one publish, short next to the < 1 s end-to-end target.
WAKE_DEBOUNCE_SECONDS = 0.05


def _publish() -> None:
    from apps.webhooks.tasks import drain_ledger

    try:
        drain_ledger.apply_async()
    except Exception:
        metrics.wakeups.labels(outcome="failed").inc()
        log.warning("webhook_wakeup_failed", exc_info=True)
    else:
        metrics.wakeups.labels(outcome="published").inc()


# The lambda looks _publish up at each call, so that a test may swap it.
_waker = DebouncedWaker(thread_name="ledger-waker", publish=lambda: _publish(), debounce_seconds=WAKE_DEBOUNCE_SECONDS)


def ledger_wake() -> None:
    """Asks for a drain of the ledger queue soon; called on commit of a stored event."""
    from apps.webhooks.tasks import drain_ledger

    if drain_ledger.app.conf.task_always_eager:
        _publish()  # runs the drain here and now
        return
    _waker.poke()
