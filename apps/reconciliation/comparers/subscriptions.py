"""Subscriptions: status, items (prices and quantities), period end (from the items), the cancel flag,
and subscriptions held on one side only.

Every correction is a snapshot applied through subscription_apply_snapshot, as a webhook's would be,
stated as an event created when Stripe's object was observed (common.ObservedFinding): it overrides
every event older than the observation and loses to any newer one, so a run never rolls back a
change that a webhook delivered after the page was listed, and a late delivery of an older event
cannot undo the correction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.checkout.models import BillingCustomer
from apps.common.stripe_ids import stripe_id
from apps.entitlements import services
from apps.entitlements.models import SubscriptionRecord
from apps.entitlements.projection import entitlements_recompute
from apps.projects.models import Project
from apps.reconciliation.comparers.base import Finding, ListSpec
from apps.reconciliation.comparers.common import (
    ObservedFinding,
    correction_audit,
    differences,
    iso,
    iso_ts,
    listing_started_at,
    metadata_user,
    observed_now,
    stripe_side,
)
from apps.reconciliation.policy import AcceptStripeRefused

STATUS = "subscription_status"
ITEMS = "subscription_items"
PERIOD_END = "subscription_period_end"
CANCEL_AT_PERIOD_END = "subscription_cancel_at_period_end"
MISSING_LOCALLY = "subscription_missing_locally"
MISSING_LOCALLY_UNROUTED = "subscription_missing_locally_unrouted"
MISSING_AT_STRIPE = "subscription_missing_at_stripe"

# Stripe never changes these again: a subscription in them is history, not a live one to miss.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})

_COLUMNS = ("stripe_subscription_id", "user_id", "status", "price_ids", "current_period_end", "cancel_at_period_end")
_ITEMS = "stripe_data__items__data"


def _quantities(items: Any) -> dict[str, int] | None:
    """Quantity per price of a list of subscription items; None when there is no list to read."""
    if not isinstance(items, list):
        return None
    quantities: dict[str, int] = {}
    for item in items:
        if isinstance(item, dict) and item.get("price"):
            price = stripe_id(item.get("price"))
            quantities[price] = quantities.get(price, 0) + int(item.get("quantity") or 1)
    return quantities


def _stripe_state(obj: dict[str, Any]) -> dict[str, Any]:
    """The compared fields of a Stripe subscription, read as subscription_apply_snapshot reads them."""
    items = (obj.get("items") or {}).get("data") or []
    ends = [item["current_period_end"] for item in items if item.get("current_period_end")]
    return {
        "status": str(obj.get("status") or ""),
        "price_ids": sorted({stripe_id(item.get("price")) for item in items if item.get("price")}),
        "quantities": _quantities(items),
        "current_period_end": iso_ts(max(ends)) if ends else None,
        "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
    }


def _local_state(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": row["status"],
        "price_ids": sorted(row["price_ids"] or []),
        # From the snapshot last applied: the record keeps no quantities of its own.
        "quantities": _quantities(row[_ITEMS]),
        "current_period_end": iso(row["current_period_end"]),
        "cancel_at_period_end": row["cancel_at_period_end"],
    }


def _record_state(record: SubscriptionRecord | None) -> dict[str, Any] | None:
    """What an audit row shows of a record before and after a correction."""
    if record is None:
        return None
    return {
        "status": record.status,
        "price_ids": record.price_ids,
        "current_period_end": iso(record.current_period_end),
        "cancel_at_period_end": record.cancel_at_period_end,
        "ended_at": iso(record.ended_at),
    }


class SubscriptionComparer:
    object_type = "subscription"

    def list_spec(self) -> ListSpec:
        return ListSpec(operation="list_page", params={"status": "all"})

    def compare_page(self, project: Project, stripe_objects: list[dict[str, Any]]) -> list[Finding]:
        observed = observed_now()
        ids = [obj["id"] for obj in stripe_objects]
        rows = {
            row["stripe_subscription_id"]: row
            # The stored snapshot's items only (their quantities), not the whole snapshot.
            for row in SubscriptionRecord.objects.filter(project=project, stripe_subscription_id__in=ids).values(
                *_COLUMNS, _ITEMS
            )
        }
        findings: list[Finding] = []
        missing: list[dict[str, Any]] = []
        for obj in stripe_objects:
            row = rows.get(obj["id"])
            if row is None:
                missing.append(obj)
                continue
            findings += self._differences(row, obj, observed)
        findings += self._missing_locally(project, missing, observed)
        return findings

    def _differences(self, row: dict[str, Any], obj: dict[str, Any], observed: int) -> list[Finding]:
        local, stripe = _local_state(row), _stripe_state(obj)
        if local["quantities"] is None or stripe["quantities"] is None:
            local["quantities"] = stripe["quantities"] = None  # unknown on one side: prices only
        fields_by_kind = {
            STATUS: ("status",),
            ITEMS: ("price_ids", "quantities"),
            PERIOD_END: ("current_period_end",),
            CANCEL_AT_PERIOD_END: ("cancel_at_period_end",),
        }
        findings: list[Finding] = []
        for kind, names in fields_by_kind.items():
            local_value, stripe_value = differences(
                {name: local[name] for name in names}, {name: stripe[name] for name in names}
            )
            if stripe_value:
                findings.append(self._finding(kind, obj, row["user_id"], local_value, stripe_value, observed))
        return findings

    def _missing_locally(self, project: Project, objects: list[dict[str, Any]], observed: int) -> list[Finding]:
        """Subscriptions we never recorded, with the user they would be recorded for.

        Our metadata names the user; else the customer's link does, looked up in one query for the
        page, made only when some subscription lacks the metadata (drift, not size, pays for it).
        """
        users = {obj["id"]: metadata_user(project, obj) for obj in objects}
        unnamed = {stripe_id(obj.get("customer")) for obj in objects if not users[obj["id"]]} - {""}
        linked = (
            dict(
                BillingCustomer.objects.filter(project=project, stripe_customer_id__in=unnamed).values_list(
                    "stripe_customer_id", "user_id"
                )
            )
            if unnamed
            else {}
        )
        findings: list[Finding] = []
        for obj in objects:
            user_id = users[obj["id"]] or linked.get(stripe_id(obj.get("customer")), "")
            state = _stripe_state(obj)
            stripe_value = {name: state[name] for name in ("status", "price_ids", "current_period_end")}
            kind = MISSING_LOCALLY if user_id else MISSING_LOCALLY_UNROUTED
            stripe_value["customer"] = stripe_id(obj.get("customer"))
            findings.append(self._finding(kind, obj, user_id, None, stripe_value, observed))
        return findings

    def _finding(
        self, kind: str, obj: dict[str, Any], user_id: str, local: Any, stripe: Any, observed: int
    ) -> ObservedFinding:
        return ObservedFinding(
            kind=kind,
            object_type=self.object_type,
            stripe_id=obj["id"],
            user_id=user_id,
            local_value=local,
            stripe_value=stripe,
            stripe_object=obj,
            observed_at=observed,
        )

    def missing_at_stripe(self, project: Project, seen_ids: set[str]) -> Iterable[Finding]:
        live = SubscriptionRecord.objects.filter(project=project).exclude(status__in=ENDED_STATUSES)
        started = listing_started_at(project)
        if started is not None:
            live = live.filter(created_at__lt=started)  # newer rows may be of objects listed too late
        rows = live.order_by("pk").values_list("stripe_subscription_id", "user_id", "status").iterator()
        for subscription_id, user_id, status in rows:
            if subscription_id not in seen_ids:
                yield Finding(
                    kind=MISSING_AT_STRIPE,
                    object_type=self.object_type,
                    stripe_id=subscription_id,
                    user_id=user_id,
                    local_value={"status": status},
                    stripe_value=None,
                )

    # --- corrections ----------------------------------------------------------------------------
    def correct(self, project: Project, finding: Finding) -> list[str]:
        existing = SubscriptionRecord.objects.filter(stripe_subscription_id=finding.stripe_id).first()
        if existing is not None and existing.project_id != project.pk:
            # Subscription ids are unique across projects: applying would rewrite another's record.
            raise AcceptStripeRefused(f"{finding.stripe_id} is recorded for another project; not applied.")
        if finding.kind == MISSING_AT_STRIPE:
            if finding.stripe_object is not None and not finding.stripe_object.get("deleted"):
                # Read again for finance, Stripe has it after all: it is listed for no project of ours
                # (its metadata or customer routes it elsewhere), which ending ours would not fix.
                status = finding.stripe_object.get("status")
                raise AcceptStripeRefused(
                    f"Stripe still has {finding.stripe_id} ({status}); it is not routed to this project. "
                    "Check its metadata and customer; nothing changed."
                )
            if existing is None or existing.status in ENDED_STATUSES:
                return []  # nothing live left to end (a webhook may have ended it since)
            return self._end(project, finding, existing)
        data, observed = stripe_side(project, finding)
        user_id = existing.user_id if existing is not None else self._route(project, finding, data)
        return self._apply(
            project, finding, user_id=user_id, data=data, observed=observed, event_id=f"reconciliation:{observed}"
        )

    def _route(self, project: Project, finding: Finding, data: dict[str, Any]) -> str:
        """The user a subscription we never recorded belongs to: the finding's, or found again now."""
        user_id = finding.user_id or metadata_user(project, data)
        customer_id = stripe_id(data.get("customer"))
        if not user_id and customer_id:
            linked = BillingCustomer.objects.filter(project=project, stripe_customer_id=customer_id)
            user_id = linked.values_list("user_id", flat=True).first() or ""
        if not user_id:
            raise AcceptStripeRefused(
                f"{finding.stripe_id} names no user of this project (no user_id metadata, customer not linked)."
            )
        return user_id

    def _end(self, project: Project, finding: Finding, record: SubscriptionRecord) -> list[str]:
        """Ends our record as customer.subscription.deleted would: canceled, ended now.

        The snapshot is our last one with the status and end changed; its items are rebuilt from the
        record when it has none, so the ended subscription keeps its prices (its history windows).
        """
        now = timezone.now()
        data = dict(record.stripe_data)
        if not (data.get("items") or {}).get("data"):
            period = {
                "current_period_start": _epoch(record.current_period_start),
                "current_period_end": _epoch(record.current_period_end),
            }
            data["items"] = {"data": [{"price": price, **period} for price in record.price_ids]}
        data.update(
            id=record.stripe_subscription_id,
            customer=record.stripe_customer_id,
            status="canceled",
            cancel_at_period_end=False,
            canceled_at=_epoch(record.canceled_at) or int(now.timestamp()),
            ended_at=int(now.timestamp()),
        )
        observed = observed_now()
        return self._apply(
            project,
            finding,
            user_id=record.user_id,
            data=data,
            observed=observed,
            event_id=f"reconciliation:gone:{observed}",
        )

    def _apply(
        self, project: Project, finding: Finding, *, user_id: str, data: dict[str, Any], observed: int, event_id: str
    ) -> list[str]:
        try:
            with transaction.atomic():
                before = _record_state(SubscriptionRecord.objects.filter(stripe_subscription_id=data["id"]).first())
                changes, _note = services.subscription_apply_snapshot(
                    project=project, user_id=user_id, data=data, event_created=observed, event_id=event_id
                )
                if not changes:
                    return []  # already right, or a newer event was applied since: nothing to undo
                record = SubscriptionRecord.objects.get(stripe_subscription_id=data["id"])
                entitlements_recompute(project=project, user_id=record.user_id)
                correction_audit(
                    project=project, finding=finding, before=before, after=_record_state(record), changes=changes
                )
                return changes
        except services.SubscriptionTie:
            # An event of the very second of the observation was applied: which is newer only Stripe's
            # next answer can tell. Nothing is written; the next run compares again.
            return []


def _epoch(moment: dt.datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None
