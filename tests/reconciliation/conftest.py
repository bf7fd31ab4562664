"""The engine's fixtures: a fake comparer of Stripe customers, with a policy of its own.

The engine is tested against the protocol (apps/reconciliation/comparers/base.py), not the real
comparers: a customer whose metadata says `drift=yes` differs (left open), one with `auto=yes`
differs until corrected (auto-corrected), and a linked customer that a complete listing never
showed is missing at Stripe. Stripe is the sandbox.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from apps.checkout.models import BillingCustomer
from apps.projects.models import Project
from apps.reconciliation.comparers.base import Finding, ListSpec
from tests.conftest import Tenant

DRIFT = "fake_drift"
AUTO = "fake_auto"
MISSING = "fake_missing"


_users = itertools.count(1)


class Killed(BaseException):
    """Stands for the process dying mid-run: nothing in the engine catches it."""


@dataclass
class FakeComparer:
    object_type: str = "customer"
    pages: list[list[str]] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    fixed: set[str] = field(default_factory=set)
    kill_on_page: int | None = None  # dies when handed this page (1-based, counted across runs)
    fail_correction: bool = False
    correction_changes_nothing: bool = False
    on_page: Callable[[Project, int], None] | None = None  # called with the page's number, first

    def list_spec(self) -> ListSpec:
        return ListSpec(operation="list_page", params={})

    def compare_page(self, project: Project, stripe_objects: list[dict[str, Any]]) -> list[Finding]:
        self.pages.append([obj["id"] for obj in stripe_objects])
        if self.on_page is not None:
            self.on_page(project, len(self.pages))
        if self.kill_on_page is not None and len(self.pages) == self.kill_on_page:
            raise Killed(f"killed on page {self.kill_on_page}")
        findings = []
        for obj in stripe_objects:
            metadata = obj.get("metadata") or {}
            user_id = str(metadata.get("user_id", ""))
            if metadata.get("drift") == "yes":
                findings.append(Finding(DRIFT, "customer", obj["id"], user_id, {"drift": "no"}, {"drift": "yes"}, obj))
            if metadata.get("auto") == "yes" and obj["id"] not in self.fixed:
                findings.append(Finding(AUTO, "customer", obj["id"], user_id, {"auto": "no"}, {"auto": "yes"}, obj))
        return findings

    def missing_at_stripe(self, project: Project, seen_ids: set[str]) -> Iterable[Finding]:
        rows = BillingCustomer.objects.filter(project=project, stripe_customer_id__isnull=False)
        for customer_id, user_id in rows.values_list("stripe_customer_id", "user_id"):
            if customer_id is not None and customer_id not in seen_ids:
                yield Finding(MISSING, "customer", customer_id, user_id, {"linked": True}, None)

    def correct(self, project: Project, finding: Finding) -> list[str]:
        if self.fail_correction:
            raise RuntimeError("the domain service refused")
        if self.correction_changes_nothing:
            return []
        self.fixed.add(finding.stripe_id)
        self.corrected.append(finding.stripe_id)
        return [f"{finding.stripe_id}: auto no -> yes"]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, settings: Any) -> FakeComparer:
    """The run's only comparer; the fake kinds' policy: only `fake_auto` is corrected unattended."""
    comparer = FakeComparer()
    monkeypatch.setattr("apps.reconciliation.services.registered_comparers", lambda: [comparer])
    monkeypatch.setattr("apps.reconciliation.findings.kind_auto_corrects", lambda kind: kind == AUTO)
    settings.RECONCILIATION_PAGE_SIZE = 3
    settings.RECONCILIATION_STRIPE_RPS = 1000
    return comparer


def stripe_customers(stripe_client: Any, tenant: Tenant | str, count: int, **metadata: str) -> list[str]:
    """Customers at the sandbox routed to the tenant's project by metadata (oldest first)."""
    slug = tenant if isinstance(tenant, str) else tenant.project.slug
    ids = []
    for _ in range(count):
        customer = stripe_client.v1.customers.create(
            params={"metadata": {"project": slug, "user_id": f"{slug}-user-{next(_users)}", **metadata}}
        )
        ids.append(customer.id)
    return ids
