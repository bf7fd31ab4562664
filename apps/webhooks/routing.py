"""Which project and user a Stripe object belongs to.

Objects we created carry `project` and `user_id` metadata. Others (invoices, charges, objects made
in Stripe's dashboard) are routed through their customer, whose row we keep per (project, user).
An object of no known project belongs to another app sharing the Stripe account.

The webhook view routes each event at receipt (route_event), so that a tenant sees and can replay
its own events even while they fail; the handlers route again with the same rules when they run.
Payloads are untrusted in shape (hand-made events exist): a value of the wrong type routes nowhere
rather than raising.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps.catalog.selectors import catalog_product_owner
from apps.checkout.selectors import customer_by_stripe_id
from apps.projects.selectors import project_get_by_slug

if TYPE_CHECKING:  # a type only: the lookups are the owning apps' selectors
    from apps.projects.models import Project

MAX_USER_ID = 255  # the width of every user_id column


@dataclass(frozen=True)
class Route:
    project: Project
    user_id: str


def _text(value: Any) -> str:
    """A routing key: a string or an integer, else nothing (a hand-made event may carry anything)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _customer_id(obj: dict[str, Any]) -> str:
    customer = obj.get("customer")
    if isinstance(customer, dict):
        return _text(customer.get("id"))
    return _text(customer)


# Projects by slug, remembered for the length of one batch of events (routes_memoized()).
_projects: ContextVar[dict[str, Project | None] | None] = ContextVar("webhook_route_projects", default=None)


@contextmanager
def routes_memoized() -> Iterator[None]:
    """Within: each project slug is read once. A batch's events mostly name the same few projects,
    and a project is not created or renamed while a batch runs (it is read again by the next one)."""
    token = _projects.set({})
    try:
        yield
    finally:
        _projects.reset(token)


# Found projects by slug, kept by the process for RECEIPT_MEMO_SECONDS (routes_remembered()).
RECEIPT_MEMO_SECONDS = 30.0
_remembered: dict[str, tuple[float, Project]] = {}


class _ProcessMemo(dict[str, "Project | None"]):
    """The process-wide memo seen as a batch memo: a found project is kept for RECEIPT_MEMO_SECONDS;
    an unknown slug is not kept, so that a project created a moment ago routes at once."""

    def __contains__(self, slug: object) -> bool:
        found = _remembered.get(str(slug))
        return found is not None and found[0] > time.monotonic()

    def __getitem__(self, slug: str) -> Project | None:
        return _remembered[slug][1]

    def __setitem__(self, slug: str, project: Project | None) -> None:
        if project is not None:
            _remembered[slug] = (time.monotonic() + RECEIPT_MEMO_SECONDS, project)
        elif slug in _remembered:
            del _remembered[slug]


def remembered_routes_forget(**_: Any) -> None:
    """A project was saved or deleted in this process: forget every remembered slug (a signal receiver;
    other processes forget within RECEIPT_MEMO_SECONDS)."""
    _remembered.clear()


@contextmanager
def routes_remembered() -> Iterator[None]:
    """Within: project slugs are read once per RECEIPT_MEMO_SECONDS by this process (the webhook view).

    Saves one of the ack's three statements. A project is routed by its slug only at receipt, for
    tenant visibility; a slug renamed within the window still routes to the same project row, and the
    handlers route again when they run.
    """
    token = _projects.set(_ProcessMemo())
    try:
        yield
    finally:
        _projects.reset(token)


def _project_by_slug(slug: str) -> Project | None:
    memo = _projects.get()
    if memo is None:
        return project_get_by_slug(slug=slug)
    if slug not in memo:
        project = project_get_by_slug(slug=slug)
        memo[slug] = project
        return project
    return memo[slug]


def route_object(obj: dict[str, Any]) -> Route | None:
    metadata = _metadata(obj)
    slug = _text(metadata.get("project"))
    user_id = _text(metadata.get("user_id")) or _text(obj.get("client_reference_id"))
    if slug and user_id and len(user_id) <= MAX_USER_ID:
        project = _project_by_slug(slug)
        if project is not None:
            return Route(project, user_id)
    customer_id = _customer_id(obj)
    if customer_id:
        customer = customer_by_stripe_id(stripe_customer_id=customer_id)
        if customer is not None:
            return Route(customer.project, customer.user_id)
    return None


def catalog_project(event_type: str, obj: dict[str, Any]) -> Project | None:
    """The project a catalog object (product.*, price.*) belongs to; the one rule for receipt and handler.

    A product: its linked CatalogProduct's project, else its `project` metadata. A price: its linked
    product's project only (a price's own metadata does not assign it). At most two indexed reads.
    """
    if event_type.startswith("product."):
        product_id = _text(obj.get("id"))
        linked = catalog_product_owner(stripe_product_id=product_id) if product_id else None
        if linked is not None:
            return linked
        slug = _text(_metadata(obj).get("project"))
        return project_get_by_slug(slug=slug) if slug else None
    product_id = _text(obj.get("product"))
    return catalog_product_owner(stripe_product_id=product_id) if product_id else None


def route_event(event_type: str, obj: dict[str, Any]) -> Route | None:
    """The project (and user, when there is one) an event is about, by the rules its handler uses.

    At most two indexed reads. Catalog events (product.*, price.*) have a project and no user.
    """
    if event_type.startswith(("product.", "price.")):
        project = catalog_project(event_type, obj)
        return Route(project, "") if project is not None else None
    return route_object(obj)
