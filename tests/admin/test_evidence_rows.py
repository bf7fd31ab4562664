"""Rows an audit needs cannot be deleted in the admin, by anyone: not one at a time, not in bulk.
The audit log, the revenue ledger and the Stripe event ledger cannot be added or changed either."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from apps.checkout.models import BillingCustomer, CheckoutSession, PortalSession
from apps.common.models import AuditLog
from apps.entitlements.models import Entitlement, Grant, Purchase, RevenueEntry, SubscriptionRecord
from apps.projects.models import ApiKey, App, Project
from apps.webhooks.models import ProcessorEvent, ReplayRun
from tests.factories import make_admin_rows

pytestmark = pytest.mark.django_db

EVIDENCE: list[type[Model]] = [
    Project,  # deactivated instead; every money row points at it
    App,  # deactivated instead; deleting it would delete its keys
    ApiKey,  # revoked instead
    BillingCustomer,
    CheckoutSession,
    PortalSession,
    Grant,  # revoked instead
    Entitlement,
    SubscriptionRecord,
    Purchase,
    RevenueEntry,
    AuditLog,
    ProcessorEvent,
    ReplayRun,
]
# Written only by the service; nobody adds or changes them by hand, superusers included.
READ_ONLY_LEDGERS: list[type[Model]] = [AuditLog, RevenueEntry, ProcessorEvent]


def _url(model: type[Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _row(model: type[Model]) -> Model:
    return make_admin_rows()[model._meta.label_lower]


@pytest.mark.parametrize("model", EVIDENCE, ids=lambda model: model._meta.label_lower)
def test_evidence_cannot_be_deleted_even_by_a_superuser(staff: Client, model: type[Model]) -> None:
    row = _row(model)
    assert staff.get(_url(model, "delete", row.pk)).status_code == 403
    assert staff.post(_url(model, "delete", row.pk), {"post": "yes"}).status_code == 403
    changelist = staff.get(_url(model, "changelist"))
    assert changelist.status_code == 200
    action_form = changelist.context["action_form"]  # None when the page offers no action at all
    offered = dict(action_form.fields["action"].choices) if action_form is not None else {}
    assert "delete_selected" not in offered
    assert "delete_selected" not in admin.site._registry[model].get_actions(changelist.wsgi_request)
    # Posting the bulk action by hand does not run it either: Django only runs listed actions.
    staff.post(_url(model, "changelist"), {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert model._default_manager.filter(pk=row.pk).exists()


@pytest.mark.parametrize("model", READ_ONLY_LEDGERS, ids=lambda model: model._meta.label_lower)
def test_the_ledgers_cannot_be_added_or_changed_even_by_a_superuser(staff: Client, model: type[Model]) -> None:
    row = _row(model)
    assert staff.get(_url(model, "add")).status_code == 403
    assert staff.post(_url(model, "add"), {}).status_code == 403
    view = staff.get(_url(model, "change", row.pk))
    assert view.status_code == 200  # visible, as a read-only page
    assert view.context["has_change_permission"] is False
    assert staff.post(_url(model, "change", row.pk), {}).status_code == 403


def test_every_evidence_admin_refuses_delete_whatever_the_user(support: object) -> None:
    # The permission methods ignore the user: a superuser holds every Django permission, so only
    # the ModelAdmin itself can refuse.
    for model in EVIDENCE:
        model_admin = admin.site._registry[model]
        assert model_admin.has_delete_permission(None) is False, model  # type: ignore[arg-type]
    for model in READ_ONLY_LEDGERS:
        model_admin = admin.site._registry[model]
        assert model_admin.has_add_permission(None) is False, model  # type: ignore[arg-type]
        assert model_admin.has_change_permission(None) is False, model  # type: ignore[arg-type]
