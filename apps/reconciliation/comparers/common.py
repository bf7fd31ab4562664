"""What the comparers share: when Stripe's side was observed, Stripe's side of a finding, values, audit."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from apps.common import stripe_gateway
from apps.common.audit import audit_record
from apps.projects.models import Project
from apps.reconciliation.comparers.base import Finding
from apps.reconciliation.models import ReconciliationRun

AUDIT_ACTOR = "reconciliation"
AUDIT_ACTION = "reconciliation.correct"

# Stripe's object is sampled when its page is answered, a moment before the comparer sees it (and
# Stripe's clock and ours differ a little). Stating the observation a second earlier errs on the
# safe side: an event created in that second that we already applied keeps its state (the snapshot
# is older than it and is skipped), where a later observation would overwrite it.
OBSERVED_MARGIN_SECONDS = 1


# Set by the run around a page's comparison: when that page was requested from Stripe.
_page_observed_at: ContextVar[int | None] = ContextVar("reconciliation_page_observed_at", default=None)


def observed_now() -> int:
    """The observation time of Stripe data read now, in Stripe's unit (epoch seconds).

    Inside `observing(...)` (a page being compared) it is the time the page was requested: listing
    or retrieving a page takes seconds, and a webhook applied meanwhile must stay newer than it.
    """
    pinned = _page_observed_at.get()
    return pinned if pinned is not None else int(time.time()) - OBSERVED_MARGIN_SECONDS


@contextmanager
def observing(observed_at: int) -> Iterator[None]:
    """Pins observed_now() to `observed_at` (a page's request time) for the comparison of that page."""
    token = _page_observed_at.set(observed_at)
    try:
        yield
    finally:
        _page_observed_at.reset(token)


@dataclass(frozen=True)
class ObservedFinding(Finding):
    """A finding that knows when its Stripe object was listed (epoch seconds, see observed_now).

    A correction applies the object as an event created at that moment would be applied: it wins
    over every event created before it, and loses to any created after it.
    """

    observed_at: int = field(default=0, compare=False)


def stripe_side(project: Project, finding: Finding) -> tuple[dict[str, Any], int]:
    """The Stripe object a correction applies, and when it was observed.

    A finding made by a comparer in this run carries its object. One rebuilt from a stored
    discrepancy (finance's accept_stripe) does not: Stripe's current object is read now, so this
    must be called outside any database transaction.
    """
    if finding.stripe_object is not None:
        observed = finding.observed_at if isinstance(finding, ObservedFinding) and finding.observed_at else 0
        return finding.stripe_object, observed or observed_now()
    observed = observed_now()
    current = stripe_gateway.object_retrieve(
        project_slug=project.slug, object_type=finding.object_type, object_id=finding.stripe_id
    )
    return current, observed


def differences(local: Mapping[str, Any], stripe: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields whose values differ, each side with its own value."""
    names = [name for name in stripe if local.get(name) != stripe.get(name)]
    return {name: local.get(name) for name in names}, {name: stripe.get(name) for name in names}


def iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat() if moment is not None else None


def iso_ts(value: Any) -> str | None:
    return iso(dt.datetime.fromtimestamp(int(value), tz=dt.UTC)) if value else None


def metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def metadata_user(project: Project, obj: Mapping[str, Any]) -> str:
    """The user our metadata names on a Stripe object of this project; "" when it names none."""
    meta = metadata(obj)
    user_id = meta.get("user_id")
    if meta.get("project") == project.slug and isinstance(user_id, str):
        return user_id
    return ""


def listing_started_at(project: Project) -> dt.datetime | None:
    """When the project's listing in progress began: its running run's start, or that of the dead run
    it resumed (and so on back), since a resumed listing does not go over the pages again.

    Local rows created after that may belong to Stripe objects created after the listing passed the
    newest page: missing_at_stripe must not call them missing. None when no run is in progress.
    """
    run = ReconciliationRun.objects.filter(project=project, status=ReconciliationRun.Status.RUNNING).first()
    started = run.started_at if run is not None else None
    seen: set[int] = set()
    while run is not None and run.resumed_from_id is not None and run.resumed_from_id not in seen:
        seen.add(run.resumed_from_id)
        run = ReconciliationRun.objects.filter(pk=run.resumed_from_id).first()
        if run is not None and started is not None:
            started = min(started, run.started_at)
    return started


def correction_audit(*, project: Project, finding: Finding, before: Any, after: Any, changes: list[str]) -> None:
    """One audit row per correction that changed something, in the correction's transaction."""
    audit_record(
        actor=AUDIT_ACTOR,
        action=AUDIT_ACTION,
        target=f"{finding.object_type}:{finding.stripe_id}",
        reason=f"{finding.kind}: " + "; ".join(changes),
        project=project,
        before=before,
        after=after,
    )
