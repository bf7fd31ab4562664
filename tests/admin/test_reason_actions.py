"""Admin actions that change state ask for a reason on an intermediate page (apps/common/admin_actions):
nothing runs without one, and the reason typed is the one recorded."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from apps.common.models import AuditLog
from apps.entitlements.models import Grant
from apps.webhooks.models import ProcessorEvent, ReplayRun
from tests.conftest import Tenant, committed
from tests.factories import GrantFactory, ProcessorEventFactory

pytestmark = pytest.mark.django_db

EVENTS = "/admin/webhooks/processorevent/"
GRANTS = "/admin/entitlements/grant/"


def test_choosing_replay_asks_for_a_reason_and_replays_nothing_yet(staff: Client) -> None:
    event = ProcessorEventFactory.create(project=None)
    page = staff.post(EVENTS, {"action": "replay_selected", "_selected_action": [event.pk], "index": 0})
    assert page.status_code == 200
    assert page.templates[0].name == "admin/action_reason.html"
    html = page.content.decode()
    assert event.stripe_event_id in html and 'name="reason"' in html
    assert 'value="replay_selected"' in html and f'name="_selected_action" value="{event.pk}"' in html
    assert "This field is required" not in html  # not an error before anything was typed
    assert not ReplayRun.objects.exists()


@pytest.mark.parametrize("action", ["replay_selected", "dry_run_selected"])
def test_a_replay_without_a_reason_runs_nothing_and_says_the_reason_is_required(staff: Client, action: str) -> None:
    event = ProcessorEventFactory.create(project=None)
    before = ProcessorEvent.objects.values().get(pk=event.pk)
    page = staff.post(EVENTS, {"action": action, "_selected_action": [event.pk], "reason": "   "})
    assert page.status_code == 200
    assert page.context["form"].errors["reason"] == ["This field is required."]
    assert "This field is required." in page.content.decode()
    assert not ReplayRun.objects.exists() and not AuditLog.objects.exists()
    assert ProcessorEvent.objects.values().get(pk=event.pk) == before


@pytest.mark.parametrize(("action", "dry_run"), [("replay_selected", False), ("dry_run_selected", True)])
def test_a_replay_records_the_reason_typed(staff: Client, action: str, dry_run: bool) -> None:
    event = ProcessorEventFactory.create(project=None)
    reason = "handler bug #42 fixed; re-applying"
    response = staff.post(EVENTS, {"action": action, "_selected_action": [event.pk], "reason": reason}, follow=True)
    assert response.status_code == 200
    run = ReplayRun.objects.get()
    assert run.reason == reason and run.dry_run is dry_run and run.requested_by == "admin:support"
    assert run.params["event_ids"] == [event.stripe_event_id]
    audit = AuditLog.objects.get(target=f"replay #{run.pk}")
    assert audit.reason == reason and audit.action == ("replay.dry_run" if dry_run else "replay.run")
    assert f"#{run.pk}" in response.content.decode()


def test_select_all_is_carried_through_the_reason_page(staff: Client) -> None:
    first, second = ProcessorEventFactory.create(project=None), ProcessorEventFactory.create(project=None)
    data = {"action": "dry_run_selected", "_selected_action": [first.pk], "select_across": "1", "index": 0}
    page = staff.post(EVENTS, data)
    assert 'name="select_across" value="1"' in page.content.decode()
    assert page.context["count"] == 2
    staff.post(EVENTS, _confirm(data, "check all"))
    assert sorted(ReplayRun.objects.get().params["event_ids"]) == sorted(
        [first.stripe_event_id, second.stripe_event_id]
    )


def _confirm(data: dict[str, object], reason: str) -> dict[str, object]:
    """What the reason page posts back: the selection and the action, without the action bar's index."""
    return {key: value for key, value in data.items() if key != "index"} | {"reason": reason}


def test_the_reason_page_does_not_bypass_the_replay_permission(client: Client) -> None:
    # A staff member who may look at the ledger may dry-run, but a real replay needs the change
    # permission: posting the reason page's answer by hand must not get around that.
    viewer = get_user_model().objects.create_user("viewer", "v@example.invalid", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_processorevent"))
    client.force_login(viewer)
    event = ProcessorEventFactory.create(project=None)
    client.post(EVENTS, {"action": "replay_selected", "_selected_action": [event.pk], "reason": "sneaky"})
    assert not ReplayRun.objects.exists()
    client.post(EVENTS, {"action": "dry_run_selected", "_selected_action": [event.pk], "reason": "look"})
    assert ReplayRun.objects.get().dry_run is True


def test_a_revoke_asks_for_a_reason_the_same_way(staff: Client, alice: Tenant) -> None:
    grant = GrantFactory.create(project=alice.project, user_id="u9")
    page = staff.post(GRANTS, {"action": "revoke", "_selected_action": [grant.pk], "index": 0})
    assert page.templates[0].name == "admin/action_reason.html"
    blank = staff.post(GRANTS, {"action": "revoke", "_selected_action": [grant.pk], "reason": ""})
    assert blank.context["form"].errors["reason"] == ["This field is required."]
    assert Grant.objects.get(pk=grant.pk).revoked_at is None
    with committed():
        staff.post(GRANTS, {"action": "revoke", "_selected_action": [grant.pk], "reason": "chargeback"})
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoke_reason == "chargeback" and grant.revoked_by == "support"
    assert AuditLog.objects.get(action="grant.revoke").reason == "chargeback"
