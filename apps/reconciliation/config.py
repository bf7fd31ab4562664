"""The reconciliation settings, read in one place.

Each is read from django.conf.settings at call time (so a test's `settings` fixture applies), with the
default the README documents when settings.py does not define it. billing_service/settings.py reads the
environment (billing_service/env.py); this module only bounds the values.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Stripe's Events API reaches back 30 days: an incremental run cannot look further.
MAX_DAYS_BACK = 30
# Stripe's list endpoints answer at most 100 objects per page.
MAX_PAGE_SIZE = 100
# A `running` run whose lock is free is dead only once it is this old: a run the API created waits
# in the broker's queue, lock-less, until a worker takes it.
DEAD_RUN_GRACE_SECONDS = 120
# A pass (the listings of one mode) left unfinished is resumed by the next run of the mode only if it
# moved within this long; an older one starts again, so that what a full run reports is at most
# this much older than the run.
RESUME_WITHIN_SECONDS = 86400


def _bounded(name: str, default: float, low: float, high: float) -> float:
    value = float(getattr(settings, name, default))
    if not low <= value <= high:
        raise ImproperlyConfigured(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    return value


def enabled() -> bool:
    """RECONCILIATION_ENABLED: whether beat's entries reconcile (the command and the API always may)."""
    return bool(getattr(settings, "RECONCILIATION_ENABLED", True))


def schedule_hour() -> int:
    """RECONCILIATION_SCHEDULE_HOUR: the UTC hour of the daily (and weekly) run."""
    return int(_bounded("RECONCILIATION_SCHEDULE_HOUR", 3, 0, 23))


def days_back() -> int:
    """RECONCILIATION_DAYS_BACK: the window of an incremental run that names none."""
    return int(_bounded("RECONCILIATION_DAYS_BACK", 7, 1, MAX_DAYS_BACK))


def stripe_rps() -> float:
    """RECONCILIATION_STRIPE_RPS: Stripe requests per second one run may make (retries included)."""
    return _bounded("RECONCILIATION_STRIPE_RPS", 20, 0.1, 10_000)


def page_size() -> int:
    """RECONCILIATION_PAGE_SIZE: objects per list page (Stripe's maximum is 100)."""
    return int(_bounded("RECONCILIATION_PAGE_SIZE", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE))
