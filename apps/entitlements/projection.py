"""The entitlement projection: validity windows computed from every source of one (project, user).

Recomputed as a whole whenever a source changes, never patched. Whether a window is active is
decided when it is read (valid_from <= t < valid_to), so expiring trials, periods and grace periods
need no job: the same windows answer `as_of` queries about the past and the future.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import PriceFeature
from apps.common.locks import advisory_xact_lock
from apps.common.versioned_cache import VersionedCache
from apps.entitlements.models import Entitlement, Grant, Purchase, SubscriptionRecord
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
    features = dict(PriceFeature.objects.filter(project=project).values_list("stripe_price_id", "feature_code"))
    grace = dt.timedelta(days=project.past_due_grace_days)
    windows: list[Window] = []
    for sub in SubscriptionRecord.objects.filter(project=project, user_id=user_id):
        windows.extend(_subscription_windows(sub, features, grace))
    for purchase in Purchase.objects.filter(project=project, user_id=user_id):
        window = _purchase_window(purchase, project)
        if window is not None:
            windows.append(window)
    for grant in Grant.objects.filter(project=project, user_id=user_id):
        window = _grant_window(grant)
        if window is not None:
            windows.append(window)
    return windows


def _lock_user(project_id: int, user_id: str) -> None:
    """Serialises recomputes of one (project, user) until the transaction ends.

    Two events of one user processed at once would each compute without the other's uncommitted
    change, and the later write would drop the earlier one's. With this lock the second computes
    after the first committed, and so sees both. (SQLite runs one writer at a time anyway.)
    """
    advisory_xact_lock(f"entitlements:{project_id}:{user_id}")


def entitlements_recompute(*, project: Project, user_id: str) -> list[Window]:
    """Replaces the user's projection with one computed from the sources; the only writer of it."""
    now = timezone.now()
    # No savepoint when nested (the usual case, inside event processing): a failure here fails the
    # whole event anyway, and a savepoint costs two statements per event.
    with transaction.atomic(savepoint=False):
        _lock_user(project.pk, user_id)
        windows = windows_compute(project=project, user_id=user_id)
        stored = Entitlement.objects.filter(project=project, user_id=user_id)
        current = {
            Window(e.feature_code, e.source, e.source_id, e.valid_from, e.valid_to) for e in stored.select_for_update()
        }
        if current == set(windows):
            return windows  # nothing changed: no rewrite, and the cached answer stays valid
        stored.delete()
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
            for w in windows
        )
        ident = cache_ident(project.pk, user_id)
        # After commit: invalidating earlier would let a reader cache the old rows again.
        transaction.on_commit(lambda: entitlement_cache.invalidate(ident))
    return windows
