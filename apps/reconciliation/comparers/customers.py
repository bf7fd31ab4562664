"""Customers: the link between a Stripe customer and a (project, user), which routes every object of
that customer (apps/webhooks/routing.py), and customers held on one side only.

Our side is BillingCustomer; Stripe's is the `project` and `user_id` metadata we set when we created
the customer. Nothing here is corrected unattended (see policy.py): accepting Stripe's side moves or
removes our link, which changes where that customer's payments are routed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q

from apps.checkout.models import BillingCustomer
from apps.checkout.services import billing_customer_link
from apps.projects.models import Project
from apps.reconciliation.comparers.base import Finding, ListSpec
from apps.reconciliation.comparers.common import (
    ObservedFinding,
    correction_audit,
    listing_started_at,
    metadata,
    observed_now,
    stripe_side,
)
from apps.reconciliation.policy import AcceptStripeRefused

MAPPING = "customer_mapping"
MISSING_AT_STRIPE = "customer_missing_at_stripe"
MISSING_LOCALLY = "customer_missing_locally"

# Shown instead of another project's slug: a project's findings must not name other tenants.
ANOTHER_PROJECT = "(another project)"


def _stripe_owner(project: Project, customer: dict[str, Any]) -> dict[str, str | None]:
    """Whom the customer's metadata names: this project's slug or ANOTHER_PROJECT, and a user or None."""
    meta = metadata(customer)
    slug = meta.get("project") if isinstance(meta.get("project"), str) and meta.get("project") else None
    user_id = meta.get("user_id") if isinstance(meta.get("user_id"), str) and meta.get("user_id") else None
    if slug is not None and slug != project.slug:
        return {"project": ANOTHER_PROJECT, "user_id": None}  # its user is no business of this project
    return {"project": slug, "user_id": user_id}


def _link_state(project: Project, *user_ids: str) -> dict[str, str | None]:
    """user -> linked Stripe customer (None: a row without one, or no row), for audit rows."""
    linked = dict(
        BillingCustomer.objects.filter(project=project, user_id__in=user_ids).values_list(
            "user_id", "stripe_customer_id"
        )
    )
    return {user_id: linked.get(user_id) for user_id in user_ids}


class CustomerComparer:
    object_type = "customer"

    def list_spec(self) -> ListSpec:
        return ListSpec(operation="list_page", params={})

    def compare_page(self, project: Project, stripe_objects: list[dict[str, Any]]) -> list[Finding]:
        observed = observed_now()
        ids = [obj["id"] for obj in stripe_objects]
        owners = {obj["id"]: _stripe_owner(project, obj) for obj in stripe_objects}
        named = [owner["user_id"] for owner in owners.values() if owner["project"] == project.slug and owner["user_id"]]
        rows = list(
            BillingCustomer.objects.filter(project=project)
            .filter(Q(stripe_customer_id__in=ids) | Q(user_id__in=named))
            .values_list("user_id", "stripe_customer_id")
        )
        user_of = {customer_id: user_id for user_id, customer_id in rows if customer_id}
        customer_of = dict(rows)
        findings: list[Finding] = []
        for obj in stripe_objects:
            owner = owners[obj["id"]]
            linked_user = user_of.get(obj["id"])

            def finding(kind: str, user_id: str, local: Any, stripe: Any, obj: dict[str, Any] = obj) -> Finding:
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

            if obj.get("deleted"):
                if linked_user is not None:
                    findings.append(
                        finding(MISSING_AT_STRIPE, linked_user, {"user_id": linked_user}, {"deleted": True})
                    )
                continue
            if linked_user is not None:
                ours: dict[str, str | None] = {"project": project.slug, "user_id": linked_user}
                differ = [name for name in ("project", "user_id") if owner[name] != ours[name]]
                if differ:
                    local_value = {name: ours[name] for name in differ}
                    findings.append(finding(MAPPING, linked_user, local_value, {name: owner[name] for name in differ}))
                continue
            if owner["project"] == project.slug:
                # Our metadata, and no link of ours to this customer.
                user_id = owner["user_id"] or ""
                held = {"stripe_customer_id": customer_of.get(user_id)} if user_id else None
                stripe = {"stripe_customer_id": obj["id"], "user_id": owner["user_id"]}
                findings.append(finding(MISSING_LOCALLY, user_id, held, stripe))
        return findings

    def missing_at_stripe(self, project: Project, seen_ids: set[str]) -> Iterable[Finding]:
        linked = BillingCustomer.objects.filter(project=project, stripe_customer_id__isnull=False)
        started = listing_started_at(project)
        if started is not None:
            linked = linked.filter(created_at__lt=started)  # newer rows may be of objects listed too late
        for user_id, customer_id in linked.order_by("pk").values_list("user_id", "stripe_customer_id").iterator():
            if customer_id is not None and customer_id not in seen_ids:
                yield Finding(
                    kind=MISSING_AT_STRIPE,
                    object_type=self.object_type,
                    stripe_id=customer_id,
                    user_id=user_id,
                    local_value={"user_id": user_id},
                    stripe_value=None,
                )

    # --- corrections (finance's accept_stripe: no customer kind is corrected unattended) ------------
    def correct(self, project: Project, finding: Finding) -> list[str]:
        if finding.kind == MISSING_AT_STRIPE:
            if finding.stripe_object is not None and not finding.stripe_object.get("deleted"):
                # Read again for finance, Stripe has it: the listing missed it, Stripe did not delete it.
                raise AcceptStripeRefused(f"Stripe still has customer {finding.stripe_id}; nothing changed.")
            return self._unlink_gone(project, finding)
        customer, _ = stripe_side(project, finding)
        if customer.get("deleted"):
            return self._unlink_gone(project, finding)
        owner = _stripe_owner(project, customer)
        target = owner["user_id"] if owner["project"] == project.slug else None
        if target is None and finding.kind == MISSING_LOCALLY:
            raise AcceptStripeRefused(f"{finding.stripe_id}: its metadata names no user of this project to link.")
        with transaction.atomic():
            current = (
                BillingCustomer.objects.select_for_update()
                .filter(project=project, stripe_customer_id=finding.stripe_id)
                .first()
            )
            if current is not None and current.user_id == target:
                return []  # already what Stripe says
            users = [user for user in (current.user_id if current else None, target) if user]
            before = _link_state(project, *users)
            changes: list[str] = []
            if target is not None:
                holder = BillingCustomer.objects.filter(project=project, user_id=target).first()
                if holder is not None and holder.stripe_customer_id:
                    raise AcceptStripeRefused(
                        f"user {target} is linked to {holder.stripe_customer_id}; unlink or resolve that first."
                    )
            if current is not None:
                BillingCustomer.objects.filter(pk=current.pk).update(stripe_customer_id=None)
                changes.append(f"customer {finding.stripe_id} unlinked from {current.user_id}")
            if target is not None:
                BillingCustomer.objects.get_or_create(project=project, user_id=target)
                if billing_customer_link(project=project, user_id=target, stripe_customer_id=finding.stripe_id):
                    changes.append(f"customer {finding.stripe_id} linked to {target}")
            if not changes:
                return []
            correction_audit(
                project=project, finding=finding, before=before, after=_link_state(project, *users), changes=changes
            )
        return changes

    def _unlink_gone(self, project: Project, finding: Finding) -> list[str]:
        """Unlinks a customer deleted at Stripe, so that the user's next checkout makes a new one."""
        with transaction.atomic():
            current = (
                BillingCustomer.objects.select_for_update()
                .filter(project=project, stripe_customer_id=finding.stripe_id)
                .first()
            )
            if current is None:
                return []
            BillingCustomer.objects.filter(pk=current.pk).update(stripe_customer_id=None)
            changes = [f"customer {finding.stripe_id} (deleted at Stripe) unlinked from {current.user_id}"]
            correction_audit(
                project=project,
                finding=finding,
                before={current.user_id: finding.stripe_id},
                after={current.user_id: None},
                changes=changes,
            )
        return changes
