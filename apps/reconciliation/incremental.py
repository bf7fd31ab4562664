"""What an incremental run looks at: what Stripe's events say changed in the window, and what was created.

The window is `days_back` days back from the run's start, at most 30 (Stripe's Events API keeps 30
days of events; runs.validated_request refuses more). The run lists the window's events page by page
(each page's changed objects are kept with its checkpoint, so a resumed run still knows them), then
per compared type lists the objects created in the window, then retrieves the changed objects that
listing did not show. A dropped webhook's change is found this way; so is a change made in Stripe's
dashboard, which has an event too. Changes Stripe makes without an event are the full run's job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from apps.projects.models import Project
from apps.reconciliation.listing import owned_objects

# The objects an event's object points to whose state the event may have changed too (a refund
# changes its charge and payment intent; a paid invoice its subscription), by field.
RELATED_FIELDS: dict[str, str] = {
    "payment_intent": "payment_intent",
    "charge": "charge",
    "latest_charge": "charge",
    "subscription": "subscription",
    "invoice": "invoice",
    "latest_invoice": "invoice",
}


def window_start(*, days_back: int, now: datetime) -> datetime:
    return now - timedelta(days=days_back)


def _id_of(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def _related(obj: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for field, object_type in RELATED_FIELDS.items():
        if stripe_id := _id_of(obj.get(field)):
            yield object_type, stripe_id
    # The current API keeps an invoice's subscription under parent.subscription_details.
    parent = obj.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    if isinstance(details, dict) and (stripe_id := _id_of(details.get("subscription"))):
        yield "subscription", stripe_id


def event_refs(project: Project, events: list[dict[str, Any]], *, wanted: set[str]) -> list[str]:
    """`type:id` of every object of a wanted type that the project's events of a page changed."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if isinstance(obj, dict) and isinstance(obj.get("object"), str):
            by_type[obj["object"]].append(obj)
    refs: set[str] = set()
    for object_type, objects in by_type.items():
        # An event about another project's object (one Stripe account, several projects) is skipped.
        for obj in owned_objects(project, objects, object_type=object_type):
            if object_type in wanted and (stripe_id := _id_of(obj.get("id"))):
                refs.add(f"{object_type}:{stripe_id}")
            for related_type, related_id in _related(obj):
                if related_type in wanted:
                    refs.add(f"{related_type}:{related_id}")
    return sorted(refs)


def refs_by_type(refs: Iterable[str]) -> dict[str, set[str]]:
    changed: dict[str, set[str]] = defaultdict(set)
    for ref in refs:
        object_type, _, stripe_id = ref.partition(":")
        if stripe_id:
            changed[object_type].add(stripe_id)
    return changed
