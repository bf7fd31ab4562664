"""Customers compared with our links: one query per page; nothing corrected unattended; finance's
accept_stripe moves or removes our link, audited, after which the comparison is clean."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.checkout.models import BillingCustomer
from apps.common.models import AuditLog
from apps.reconciliation.comparers.base import Finding
from apps.reconciliation.comparers.customers import CustomerComparer
from apps.reconciliation.policy import POLICY, AcceptStripeRefused
from tests.conftest import Tenant
from tests.factories import BillingCustomerFactory

comparer = CustomerComparer()
KINDS = ("customer_mapping", "customer_missing_at_stripe", "customer_missing_locally")


def customer(cus_id: str = "cus_1", *, user_id: str | None = "u1", project: str | None = "alpha") -> dict[str, Any]:
    metadata = {key: value for key, value in (("project", project), ("user_id", user_id)) if value is not None}
    return {"id": cus_id, "object": "customer", "metadata": metadata, "created": 1_790_000_000}


def link(tenant: Tenant, user_id: str = "u1", cus_id: str | None = "cus_1") -> BillingCustomer:
    return BillingCustomerFactory.create(project=tenant.project, user_id=user_id, stripe_customer_id=cus_id)


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def links(tenant: Tenant) -> dict[str, str | None]:
    return dict(BillingCustomer.objects.filter(project=tenant.project).values_list("user_id", "stripe_customer_id"))


def test_no_customer_kind_is_corrected_unattended_but_each_can_be_accepted() -> None:
    assert all(not POLICY[kind].auto_correct and POLICY[kind].accept_stripe for kind in KINDS)


def test_a_page_of_fifty_linked_customers_finds_nothing_in_one_query(alice: Tenant) -> None:
    for n in range(50):
        link(alice, f"u{n}", f"cus_{n}")
    page = [customer(f"cus_{n}", user_id=f"u{n}") for n in range(50)]
    with CaptureQueriesContext(connection) as queries:
        assert comparer.compare_page(alice.project, page) == []
    assert len(queries) == 1


def test_metadata_naming_another_user_is_a_mapping_finding(alice: Tenant) -> None:
    link(alice)
    finding = only(comparer.compare_page(alice.project, [customer(user_id="u2")]))
    assert (finding.kind, finding.user_id, finding.local_value, finding.stripe_value) == (
        "customer_mapping",
        "u1",
        {"user_id": "u1"},
        {"user_id": "u2"},
    )


def test_lost_metadata_is_a_mapping_finding(alice: Tenant) -> None:
    link(alice)
    finding = only(comparer.compare_page(alice.project, [customer(user_id=None, project=None)]))
    assert (finding.local_value, finding.stripe_value) == (
        {"project": "alpha", "user_id": "u1"},
        {"project": None, "user_id": None},
    )


def test_metadata_naming_another_project_does_not_name_it(alice: Tenant, bob: Tenant) -> None:
    link(alice)
    finding = only(comparer.compare_page(alice.project, [customer(project="bravo", user_id="b1")]))
    assert finding.stripe_value == {"project": "(another project)", "user_id": None}
    assert "bravo" not in repr(finding.stripe_value) and "b1" not in repr(finding.stripe_value)


def test_a_customer_with_our_metadata_and_no_link_is_missing_locally(alice: Tenant) -> None:
    link(alice, "u2", "cus_2")
    findings = comparer.compare_page(
        alice.project, [customer("cus_new", user_id="u1"), customer("cus_dup", user_id="u2")]
    )
    assert [(f.kind, f.stripe_id, f.user_id, f.local_value) for f in findings] == [
        ("customer_missing_locally", "cus_new", "u1", {"stripe_customer_id": None}),
        ("customer_missing_locally", "cus_dup", "u2", {"stripe_customer_id": "cus_2"}),  # a duplicate
    ]
    assert findings[0].stripe_value == {"stripe_customer_id": "cus_new", "user_id": "u1"}


def test_a_deleted_customer_listed_is_missing_at_stripe(alice: Tenant) -> None:
    link(alice)
    finding = only(comparer.compare_page(alice.project, [{"id": "cus_1", "object": "customer", "deleted": True}]))
    assert (finding.kind, finding.stripe_value) == ("customer_missing_at_stripe", {"deleted": True})


def test_links_a_complete_listing_did_not_return_are_missing_at_stripe(alice: Tenant, bob: Tenant) -> None:
    link(alice, "u1", "cus_1")
    link(alice, "u2", "cus_2")
    link(alice, "u3", None)  # never got a Stripe customer: nothing to miss
    link(bob, "b1", "cus_bob")
    finding = only(list(comparer.missing_at_stripe(alice.project, {"cus_1"})))
    assert (finding.kind, finding.stripe_id, finding.user_id, finding.stripe_object) == (
        "customer_missing_at_stripe",
        "cus_2",
        "u2",
        None,
    )


# --- accept_stripe --------------------------------------------------------------------------------------
def test_accepting_a_mapping_moves_the_link_to_the_user_stripe_names(alice: Tenant) -> None:
    link(alice, "u1", "cus_1")
    moved = customer(user_id="u2")
    finding = only(comparer.compare_page(alice.project, [moved]))
    changes = comparer.correct(alice.project, finding)
    assert changes == ["customer cus_1 unlinked from u1", "customer cus_1 linked to u2"]
    assert links(alice) == {"u1": None, "u2": "cus_1"}
    audit = AuditLog.objects.get(action="reconciliation.correct")
    assert (audit.target, audit.before, audit.after) == (
        "customer:cus_1",
        {"u1": "cus_1", "u2": None},
        {"u1": None, "u2": "cus_1"},
    )
    assert comparer.compare_page(alice.project, [moved]) == []
    assert comparer.correct(alice.project, finding) == []


def test_accepting_lost_metadata_unlinks_our_row(alice: Tenant) -> None:
    link(alice)
    finding = only(comparer.compare_page(alice.project, [customer(user_id=None)]))
    assert comparer.correct(alice.project, finding) == ["customer cus_1 unlinked from u1"]
    assert links(alice) == {"u1": None}


def test_accepting_is_refused_when_the_named_user_has_another_customer(alice: Tenant) -> None:
    link(alice, "u1", "cus_1")
    link(alice, "u2", "cus_2")
    finding = only(comparer.compare_page(alice.project, [customer(user_id="u2")]))
    with pytest.raises(AcceptStripeRefused, match="u2 is linked to cus_2"):
        comparer.correct(alice.project, finding)
    assert links(alice) == {"u1": "cus_1", "u2": "cus_2"}


def test_accepting_missing_locally_links_the_named_user(alice: Tenant) -> None:
    link(alice, "u1", None)
    finding = only(comparer.compare_page(alice.project, [customer("cus_new")]))
    assert comparer.correct(alice.project, finding) == ["customer cus_new linked to u1"]
    assert links(alice) == {"u1": "cus_new"}
    assert comparer.compare_page(alice.project, [customer("cus_new")]) == []


def test_accepting_missing_locally_without_a_user_is_refused(alice: Tenant) -> None:
    finding = only(comparer.compare_page(alice.project, [customer("cus_x", user_id=None)]))
    assert finding.user_id == ""
    with pytest.raises(AcceptStripeRefused):
        comparer.correct(alice.project, finding)


def test_accepting_missing_at_stripe_unlinks_our_row(alice: Tenant) -> None:
    link(alice)
    finding = only(list(comparer.missing_at_stripe(alice.project, set())))
    assert comparer.correct(alice.project, finding) == ["customer cus_1 (deleted at Stripe) unlinked from u1"]
    assert links(alice) == {"u1": None}
    assert AuditLog.objects.get(action="reconciliation.correct").after == {"u1": None}
    assert list(comparer.missing_at_stripe(alice.project, set())) == []


def test_accept_stripe_rereads_the_customer_and_a_deleted_one_is_unlinked(
    alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    link(alice)
    monkeypatch.setattr(
        "apps.common.stripe_gateway.object_retrieve",
        lambda *, project_slug, object_type, object_id: {"id": object_id, "object": "customer", "deleted": True},
    )
    stored = Finding(kind="customer_mapping", object_type="customer", stripe_id="cus_1", user_id="u1")
    assert comparer.correct(alice.project, stored) == ["customer cus_1 (deleted at Stripe) unlinked from u1"]


def test_accepting_missing_at_stripe_is_refused_when_stripe_still_has_it(alice: Tenant) -> None:
    link(alice)
    finding = only(list(comparer.missing_at_stripe(alice.project, set())))
    found = Finding(**{**vars(finding), "stripe_object": customer()})
    with pytest.raises(AcceptStripeRefused, match="Stripe still has customer cus_1"):
        comparer.correct(alice.project, found)
    assert links(alice) == {"u1": "cus_1"}
    deleted = Finding(**{**vars(finding), "stripe_object": {"id": "cus_1", "object": "customer", "deleted": True}})
    assert comparer.correct(alice.project, deleted) == ["customer cus_1 (deleted at Stripe) unlinked from u1"]
