"""Resolving a discrepancy by hand (the API and the finance admin), with a note, audited.

- `accept_stripe`: Stripe is right. The object is read again from Stripe, and the comparer of its
  object type applies that copy through the domain services the webhooks use, as a run's automatic
  correction does (apps/reconciliation/comparers, policy.py says what each kind's acceptance does).
  A finding of something missing at Stripe (a `*_missing_at_stripe` kind, or a null `stripe_value`)
  is accepted with `stripe_object=None` when Stripe answers 404; any other finding whose object
  Stripe no longer has has no Stripe side left to accept (409).
- `keep_local`: our records are right; nothing but the discrepancy changes.
- `ignore`: not worth acting on; nothing but the discrepancy changes.

No Stripe call happens inside a transaction of ours: Stripe is read first, and `correct` runs outside
any transaction, as in a run (a comparer may read Stripe itself, then write in its own transaction).
So the claim cannot be the correction's transaction; instead, resolves of one discrepancy are
serialised by a session advisory lock (`discrepancy:<id>`): a second resolve while one is under way
is refused at once (409), and one that comes after it finds the discrepancy closed (409). The claim
itself is a conditional UPDATE (`status = 'open'`), with the audit entry, in one transaction, so a
run closing the finding meanwhile still makes exactly one of them win.

A process that dies between the correction and the claim leaves the discrepancy open with our records
corrected: the next run no longer finds the difference and closes it, and a second accept_stripe finds
nothing left to change. Corrections are idempotent, so nothing is applied twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stripe
import structlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.common.audit import audit_record
from apps.common.exceptions import Conflict, NotFound
from apps.common.locks import session_lock
from apps.common.query import instant_text
from apps.common.stripe_gateway import StripeInvalidRequest, object_retrieve
from apps.projects.models import Project
from apps.reconciliation.comparers import comparer_for
from apps.reconciliation.comparers.base import Comparer
from apps.reconciliation.comparers.common import ObservedFinding, observed_now
from apps.reconciliation.models import Discrepancy

log = structlog.get_logger("billing.reconciliation")

Action = Discrepancy.Action
# The actions a person may take, and the status each leaves the discrepancy in.
RESOLUTIONS: dict[str, str] = {
    Action.ACCEPT_STRIPE: Discrepancy.Status.RESOLVED,
    Action.KEEP_LOCAL: Discrepancy.Status.RESOLVED,
    Action.IGNORE: Discrepancy.Status.IGNORED,
}
NOTE_REQUIRED = "A note is required: say why this is the right resolution."


class ResolveInProgress(Conflict):
    def __init__(self, discrepancy_id: int) -> None:
        super().__init__(
            f"Discrepancy {discrepancy_id} is being resolved by another request right now; read it again in a moment."
        )


def not_open(discrepancy: Discrepancy) -> Conflict:
    """The 409 of a discrepancy that is no longer open, naming its status and who closed it."""
    by = f" by {discrepancy.resolved_by}" if discrepancy.resolved_by else ""
    at = f" at {instant_text(discrepancy.resolved_at)}" if discrepancy.resolved_at else ""
    return Conflict(
        f"Discrepancy {discrepancy.pk} is {discrepancy.status} ({discrepancy.resolution_action or 'no action'}{by}"
        f"{at}): only an open discrepancy can be resolved. Nothing changed."
    )


@contextmanager
def _resolve_lock(discrepancy_id: int) -> Iterator[bool]:
    """Whether this session now holds the discrepancy's resolve lock (always True off PostgreSQL).

    Session-level, not transaction-level: it must outlast the comparer's own transactions.
    """
    with session_lock(f"discrepancy:{discrepancy_id}") as acquired:
        yield acquired


def _stripe_object(project: Project, discrepancy: Discrepancy) -> dict[str, Any] | None:
    """Stripe's current copy of the object; None when Stripe says it does not exist (404)."""
    try:
        return object_retrieve(
            project_slug=project.slug, object_type=discrepancy.object_type, object_id=discrepancy.stripe_id
        )
    except StripeInvalidRequest as exc:
        # The gateway maps every 4xx to StripeInvalidRequest; its cause is Stripe's own error.
        cause = exc.__cause__
        if isinstance(cause, stripe.StripeError) and (cause.http_status == 404 or cause.code == "resource_missing"):
            return None
        raise


def _about_something_missing(discrepancy: Discrepancy) -> bool:
    """Whether the finding says Stripe has no such object: its Stripe side is null, or its kind is one
    of the policy's `<type>_missing_at_stripe` (a deleted customer is listed with `deleted: true`)."""
    return discrepancy.stripe_value is None or discrepancy.kind.endswith("_missing_at_stripe")


def _accept_stripe(project: Project, discrepancy: Discrepancy) -> tuple[list[str], bool]:
    """Applies Stripe's side through the type's comparer: (the changes made, whether Stripe has no object)."""
    try:
        comparer: Comparer = comparer_for(discrepancy.object_type)
    except KeyError:
        raise Conflict(
            f"Discrepancy {discrepancy.pk}: no comparer applies Stripe's side of a {discrepancy.object_type}; "
            "resolve it as keep_local or ignore. Nothing changed."
        ) from None
    observed = observed_now()  # taken before the read: a correction never overrides a later event
    stripe_object = _stripe_object(project, discrepancy)
    if stripe_object is None and not _about_something_missing(discrepancy):
        raise Conflict(
            f"Discrepancy {discrepancy.pk}: Stripe no longer has {discrepancy.object_type} {discrepancy.stripe_id}, "
            "so there is no Stripe side to accept; resolve it as keep_local or ignore (a full run reports what is "
            "missing at Stripe). Nothing changed."
        )
    finding = ObservedFinding(
        kind=discrepancy.kind,
        object_type=discrepancy.object_type,
        stripe_id=discrepancy.stripe_id,
        user_id=discrepancy.user_id,
        local_value=discrepancy.local_value,
        stripe_value=discrepancy.stripe_value,
        stripe_object=stripe_object,
        observed_at=observed,
    )
    return comparer.correct(project, finding), stripe_object is None


def discrepancy_resolve(*, discrepancy_id: int, project: Project, action: str, note: str, actor: str) -> Discrepancy:
    """Resolves an open discrepancy of `project` with `action` and a non-blank `note` (audited).

    Raises ValidationError (bad action, blank note), NotFound (no such discrepancy in the project),
    Conflict (not open, being resolved, or Stripe's side cannot be accepted), and the Stripe
    gateway's errors. Call it outside any transaction: accept_stripe reads Stripe.
    """
    note = note.strip()
    if action not in RESOLUTIONS:
        raise ValidationError({"action": [f"One of {', '.join(RESOLUTIONS)}."]})
    if not note:
        raise ValidationError({"note": [NOTE_REQUIRED]})
    discrepancy = Discrepancy.objects.filter(pk=discrepancy_id, project=project).first()
    if discrepancy is None:
        raise NotFound(f"Discrepancy {discrepancy_id} not found.")
    with _resolve_lock(discrepancy.pk) as acquired:
        if not acquired:
            raise ResolveInProgress(discrepancy.pk)
        discrepancy.refresh_from_db()  # as the resolve that held the lock before left it
        if discrepancy.status != Discrepancy.Status.OPEN:
            raise not_open(discrepancy)
        changes: list[str] = []
        gone = False
        if action == Action.ACCEPT_STRIPE:
            changes, gone = _accept_stripe(project, discrepancy)
        return _claim(discrepancy, project, action=action, note=note, actor=actor, changes=changes, gone=gone)


def _claim(
    discrepancy: Discrepancy, project: Project, *, action: str, note: str, actor: str, changes: list[str], gone: bool
) -> Discrepancy:
    now = timezone.now()
    status = RESOLUTIONS[action]
    with transaction.atomic():
        claimed = Discrepancy.objects.filter(pk=discrepancy.pk, status=Discrepancy.Status.OPEN).update(
            status=status, resolution_action=action, resolved_by=actor, resolved_at=now, note=note
        )
        if not claimed:
            # A run closed it meanwhile (no longer found); a correction made above was idempotent.
            log.warning("discrepancy_closed_meanwhile", discrepancy=discrepancy.pk, changes=changes)
            discrepancy.refresh_from_db()
            raise not_open(discrepancy)
        after: dict[str, Any] = {
            "status": status,
            "resolution_action": action,
            "resolved_by": actor,
            "resolved_at": instant_text(now),
            "note": note,
        }
        if action == Action.ACCEPT_STRIPE:
            after |= {"changes": changes, "missing_at_stripe": gone}
        audit_record(
            actor=actor,
            action=f"discrepancy.{action}",
            target=f"discrepancy #{discrepancy.pk}",
            reason=note,
            project=project,
            before={
                "status": discrepancy.status,
                "kind": discrepancy.kind,
                "object_type": discrepancy.object_type,
                "stripe_id": discrepancy.stripe_id,
                "user_id": discrepancy.user_id,
                "local_value": discrepancy.local_value,
                "stripe_value": discrepancy.stripe_value,
                "note": discrepancy.note,
            },
            after=after,
        )
    discrepancy.refresh_from_db()
    log.info(
        "discrepancy_resolved",
        discrepancy=discrepancy.pk,
        project=project.slug,
        kind=discrepancy.kind,
        action=action,
        actor=actor,
        changes=len(changes),
    )
    return discrepancy
