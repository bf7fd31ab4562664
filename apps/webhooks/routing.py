"""Which project and user a Stripe object belongs to.

Objects we created carry `project` and `user_id` metadata. Others (invoices, charges, objects made
in Stripe's dashboard) are routed through their customer, whose row we keep per (project, user).
An object of no known project belongs to another app sharing the Stripe account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.checkout.models import BillingCustomer
from apps.projects.models import Project


@dataclass(frozen=True)
class Route:
    project: Project
    user_id: str


def _customer_id(obj: dict[str, Any]) -> str:
    customer = obj.get("customer")
    if isinstance(customer, dict):
        return str(customer.get("id") or "")
    return str(customer or "")


def route_object(obj: dict[str, Any]) -> Route | None:
    metadata = obj.get("metadata") or {}
    slug = metadata.get("project")
    user_id = metadata.get("user_id") or obj.get("client_reference_id")
    if slug and user_id:
        project = Project.objects.filter(slug=slug).first()
        if project is not None:
            return Route(project, str(user_id))
    customer_id = _customer_id(obj)
    if customer_id:
        customer = BillingCustomer.objects.select_related("project").filter(stripe_customer_id=customer_id).first()
        if customer is not None:
            return Route(customer.project, customer.user_id)
    return None


def project_of(obj: dict[str, Any]) -> Project | None:
    """For catalog objects, which have a project but no user."""
    slug = (obj.get("metadata") or {}).get("project")
    return Project.objects.filter(slug=slug).first() if slug else None
