"""The entitlement projection: validity windows computed from every source of one (project, user).

Recomputed as a whole whenever a source changes, never patched. Whether a window is active is
decided when it is read (valid_from <= t < valid_to), so expiring trials, periods and grace periods
need no job: the same windows answer `as_of` queries about the past and the future.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import PriceFeature
from apps.common.locks import advisory_xact_locks
from apps.common.versioned_cache import VersionedCache
from apps.entitlements.models import Entitlement, Grant, Purchase, SubscriptionRecord
from apps.entitlements.notifications import outbox
from apps.projects.models import Project

entitlement_cache = VersionedCache("ent", timeout=settings.ENTITLEMENT_CACHE_SECONDS)

ENTITLING_STATUSES = frozenset({"active", "trialing"})


@dataclass(frozen=True)
class Window:
    feature_code: str
    source: str
    source_id: int
    valid_from: dt.datetime
    valid_to: dt.datetime | None

    def covers(self, instant: dt.datetime) -> bool:
        return self.valid_from <= instant and (self.valid_to is None or instant < self.valid_to)


def cache_ident(project_id: int, user_id: str) -> str:
    return f"{project_id}:{user_id}"


def _subscription_windows(sub: SubscriptionRecord, features: dict[str, str], grace: dt.timedelta) -> list[Window]:
    started = dt.datetime.fromtimestamp(int(sub.stripe_data.get("start_date") or 0), tz=dt.UTC)
    if sub.status in ENTITLING_STATUSES:
        valid_to = sub.current_period_end
    elif sub.status == "past_due" and sub.past_due_since is not None:
        valid_to = sub.past_due_since + grace
    elif sub.ended_at is not None:
        valid_to = sub.ended_at  # history, for as_of queries into the past
    else:
        return []  # incomplete, unpaid, paused: nothing paid for
    if valid_to is not None and valid_to <= started:
        return []
    codes = sorted({features[price] for price in sub.price_ids if price in features})
    return [Window(code, Entitlement.Source.SUBSCRIPTION, sub.pk, started, valid_to) for code in codes]


def _purchase_window(purchase: Purchase, project: Project) -> Window | None:
    if not purchase.feature_code:
        return None
    valid_to = purchase.valid_to
    ended = purchase.status == Purchase.Status.REFUNDED or (
        project.revoke_on_partial_refund and purchase.amount_refunded > 0
    )
    if ended:
        valid_to = purchase.refunded_at or purchase.updated_at
    if valid_to is not None and valid_to <= purchase.valid_from:
        return None
    return Window(purchase.feature_code, Entitlement.Source.PURCHASE, purchase.pk, purchase.valid_from, valid_to)


def _grant_window(grant: Grant) -> Window | None:
    ends = [moment for moment in (grant.valid_to, grant.revoked_at) if moment is not None]
    valid_to = min(ends) if ends else None
    if valid_to is not None and valid_to <= grant.valid_from:
        return None
    return Window(grant.feature_code, Entitlement.Source.GRANT, grant.pk, grant.valid_from, valid_to)


def windows_compute(*, project: Project, user_id: str) -> list[Window]:
    return _windows_of_users(project, [user_id])[user_id]


def _of_users(user_ids: list[str]) -> dict[str, Any]:
    # `=` for one user (the common case outside batches): the plan the single-user index expects.
    return {"user_id": user_ids[0]} if len(user_ids) == 1 else {"user_id__in": user_ids}


def _windows_of_users(project: Project, user_ids: list[str]) -> dict[str, list[Window]]:
    """Each user's windows, read with one query per source whatever the number of users."""
    features = dict(PriceFeature.objects.filter(project=project).values_list("stripe_price_id", "feature_code"))
    grace = dt.timedelta(days=project.past_due_grace_days)
    windows: dict[str, list[Window]] = {user_id: [] for user_id in user_ids}
    users = _of_users(user_ids)
    for sub in SubscriptionRecord.objects.filter(project=project, **users):
        windows[sub.user_id].extend(_subscription_windows(sub, features, grace))
    for purchase in Purchase.objects.filter(project=project, **users):
        window = _purchase_window(purchase, project)
        if window is not None:
            windows[purchase.user_id].append(window)
    for grant in Grant.objects.filter(project=project, **users):
        window = _grant_window(grant)
        if window is not None:
            windows[grant.user_id].append(window)
    return windows


def _user_lock_name(project_id: int, user_id: str) -> str:
    """The lock that serialises recomputes of one (project, user) until the transaction ends.

    Two events of one user processed at once would each compute without the other's uncommitted
    change, and the later write would drop the earlier one's. With this lock the second computes
    after the first committed, and so sees both. (SQLite runs one writer at a time anyway.)
    """
    return f"entitlements:{project_id}:{user_id}"


def entitlements_recompute(*, project: Project, user_id: str) -> list[Window]:
    """Replaces the user's projection with one computed from the sources; the only writer of it."""
    return entitlements_recompute_many(project=project, user_ids=[user_id])[user_id]


def entitlements_recompute_many(*, project: Project, user_ids: Iterable[str]) -> dict[str, list[Window]]:
    """entitlements_recompute for several users of one project, with one query per source for all.

    The users are locked in sorted order, so that two batches recomputing overlapping users wait for
    each other instead of deadlocking.
    """
    users = sorted(set(user_ids))
    if not users:
        return {}
    now = timezone.now()
    # No savepoint when nested (the usual case, inside event processing): a failure here fails the
    # whole event anyway, and a savepoint costs two statements per event.
    with transaction.atomic(savepoint=False):
        advisory_xact_locks([_user_lock_name(project.pk, user_id) for user_id in users])
        windows = _windows_of_users(project, users)
        stored = Entitlement.objects.filter(project=project, **_of_users(users))
        current: dict[str, set[Window]] = {user_id: set() for user_id in users}
        for e in stored.select_for_update():
            current[e.user_id].add(Window(e.feature_code, e.source, e.source_id, e.valid_from, e.valid_to))
        changed = [user_id for user_id in users if current[user_id] != set(windows[user_id])]
        if not changed:
            return windows  # nothing changed: no rewrite, and the cached answers stay valid
        Entitlement.objects.filter(project=project, user_id__in=changed).delete()
        Entitlement.objects.bulk_create(
            Entitlement(
                project=project,
                user_id=user_id,
                feature_code=w.feature_code,
                source=w.source,
                source_id=w.source_id,
                valid_from=w.valid_from,
                valid_to=w.valid_to,
                computed_at=now,
            )
            for user_id in changed
            for w in windows[user_id]
        )
        _notify_changed(project, changed, windows, now)
        idents = [cache_ident(project.pk, user_id) for user_id in changed]
        # After commit: invalidating earlier would let a reader cache the old rows again.
        transaction.on_commit(lambda: _invalidate(idents))
    return windows


def _notify_changed(project: Project, users: list[str], windows: dict[str, list[Window]], now: dt.datetime) -> None:
    """The transactional outbox: each changed user's new version and `entitlements.updated`, in this transaction."""
    versions = outbox.entitlement_versions_bump(project=project, user_ids=users)
    outbox.notifications_write(
        project=project,
        notification_type=outbox.ENTITLEMENTS_UPDATED,
        messages=[
            outbox.Message(
                user_id=user_id,
                data=outbox.entitlements_data(
                    user_id=user_id, version=versions[user_id], windows=windows[user_id], now=now
                ),
            )
            for user_id in users
        ],
    )


def _invalidate(idents: list[str]) -> None:
    for ident in idents:
        entitlement_cache.invalidate(ident)


# The recomputes requested inside recomputes_batched(), by (project id, user id); None outside one.
_pending: ContextVar[dict[tuple[int, str], Project] | None] = ContextVar("entitlements_pending", default=None)


def entitlements_recompute_later(*, project: Project, user_id: str) -> None:
    """Recomputes the user's projection now, or, inside recomputes_batched(), once when the batch ends.

    What event handlers call: a batch of events about one user then recomputes it once. A request
    made in a savepoint that rolls back stays recorded; recomputing from the sources is idempotent,
    so that costs a recompute and changes nothing.
    """
    pending = _pending.get()
    if pending is None:
        entitlements_recompute(project=project, user_id=user_id)
    else:
        pending.setdefault((project.pk, user_id), project)


@contextmanager
def recomputes_batched() -> Iterator[None]:
    """Defers entitlements_recompute_later() calls to the end of the block, one recompute per user.

    Enter it inside the transaction that writes the sources, so that the projection commits with
    them; when the block raises, nothing is recomputed (the caller's transaction rolls back).
    """
    pending: dict[tuple[int, str], Project] = {}
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    by_project: dict[int, tuple[Project, list[str]]] = {}
    for (project_id, user_id), project in pending.items():
        by_project.setdefault(project_id, (project, []))[1].append(user_id)
    for project_id in sorted(by_project):
        project, users = by_project[project_id]
        entitlements_recompute_many(project=project, user_ids=users)
