"""What every comparer gives the run: findings for a page of Stripe objects, and corrections.

A comparer knows one Stripe object type. The run (apps/reconciliation/runs.py) lists that type at
Stripe page by page and hands each page to `compare_page`, which loads the matching local rows in
one query and returns what differs. In full mode, once the listing is complete, `missing_at_stripe`
names the local rows that Stripe never listed. `correct` applies Stripe's side of a finding through
the same domain services the webhooks use (never a second path that writes entitlements).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from apps.projects.models import Project


@dataclass(frozen=True)
class Finding:
    kind: str  # a key of apps.reconciliation.policy.POLICY
    object_type: str
    stripe_id: str
    user_id: str = ""
    local_value: Any = None
    stripe_value: Any = None
    # The Stripe object as listed (None when it is missing at Stripe): what a correction applies.
    stripe_object: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ListSpec:
    """How the run lists this type: a stripe_gateway iterator function name and its fixed params."""

    operation: str
    params: dict[str, Any]


class Comparer(Protocol):
    object_type: str

    def list_spec(self) -> ListSpec: ...

    def compare_page(self, project: Project, stripe_objects: list[dict[str, Any]]) -> list[Finding]:
        """What differs between these Stripe objects (of this project) and our rows: one query."""
        ...

    def missing_at_stripe(self, project: Project, seen_ids: set[str]) -> Iterable[Finding]:
        """Full mode, after a complete listing: our rows whose Stripe object was never listed."""
        ...

    def correct(self, project: Project, finding: Finding) -> list[str]:
        """Makes our records say what Stripe says; the changes made (empty: nothing to do)."""
        ...
