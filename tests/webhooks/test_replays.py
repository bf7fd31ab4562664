from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from apps.common.models import AuditLog
from apps.webhooks import registry
from apps.webhooks.models import ProcessorEvent, ReplayRun
from apps.webhooks.registry import Outcome, StripeEvent
from apps.webhooks.replays import replay_run
from apps.webhooks.tasks import replay_run_task
from tests.conftest import Tenant, committed, make_tenant
from tests.webhooks.conftest import deliver, effects, idempotent_effect, make_event

pytestmark = pytest.mark.django_db
REPLAYS = "/api/v1/billing/replays"


def _applied(client: Client, tenant: Tenant, *ids_and_created: tuple[str, int]) -> None:
    """Delivers and processes events routed to the tenant's project."""
    with committed():
        for event_id, created in ids_and_created:
            event = make_event(event_id, created=created, obj={"id": "obj", "project_id": tenant.project.pk})
            assert deliver(client, event).status_code == 200


def test_a_replay_runs_events_in_created_order(client: Client, handlers: dict[str, Any], alice: Tenant) -> None:
    seen: list[str] = []

    @registry.handles("test.thing")
    def record(event: StripeEvent) -> Outcome:
        seen.append(event.id)
        return Outcome("processed", project_id=alice.project.pk)

    _applied(client, alice, ("evt_c", 1_700_000_300), ("evt_a", 1_700_000_100), ("evt_b", 1_700_000_200))
    seen.clear()
    run = replay_run(project_id=alice.project.pk, event_ids=["evt_b", "evt_c", "evt_a"], requested_by="ops")
    assert seen == ["evt_a", "evt_b", "evt_c"]
    assert [r["event_id"] for r in run.results] == ["evt_a", "evt_b", "evt_c"]


def test_replaying_applied_events_changes_nothing(client: Client, effect_handler: Any, alice: Tenant) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100), ("evt_2", 1_700_000_200))
    assert effects() == 2
    run = replay_run(project_id=alice.project.pk, since=datetime(2023, 1, 1, tzinfo=UTC), requested_by="ops")
    assert effects() == 2
    assert run.status == "succeeded"
    assert run.counts == {"selected": 2, "processed": 2, "ignored": 0, "failed": 0, "skipped": 0}
    assert all(result["changes"] == [] for result in run.results)


def test_a_dry_run_reports_the_changes_and_changes_nothing(client: Client, handlers: dict[str, Any]) -> None:
    alice_project = make_tenant("alpha")
    _applied(client, alice_project, ("evt_new", 1_700_000_100))  # no handler yet: stored and ignored
    row = ProcessorEvent.objects.get()
    assert row.status == "ignored" and row.project_id is None
    registry.handles("test.thing")(idempotent_effect)  # the fix is deployed
    before = ProcessorEvent.objects.values().get()
    run = replay_run(project_id=None, event_ids=["evt_new"], dry_run=True, requested_by="ops", reason="check fix")
    assert run.dry_run is True
    assert run.results[0]["changes"] == ["effect for evt_new"]
    assert effects() == 0
    assert ProcessorEvent.objects.values().get() == before
    # The real run applies it, and routes the row to its project.
    real = replay_run(project_id=None, event_ids=["evt_new"], requested_by="ops")
    assert real.results[0]["changes"] == ["effect for evt_new"]
    assert effects("evt_new") == 1
    assert ProcessorEvent.objects.get().project_id == alice_project.project.pk


def test_a_failing_event_fails_the_run_and_is_recorded(client: Client, handlers: dict[str, Any], alice: Tenant) -> None:
    _applied(client, alice, ("evt_x", 1_700_000_100))

    @registry.handles("test.thing")
    def broken(event: StripeEvent) -> Outcome:
        raise ValueError("bad snapshot")

    run = replay_run(project_id=None, event_ids=["evt_x"], requested_by="ops")
    assert run.status == "failed"
    assert run.results[0]["error"] == "ValueError: bad snapshot"
    assert ProcessorEvent.objects.get().status == "failed"


def test_every_replay_is_audited(client: Client, effect_handler: Any, alice: Tenant) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))
    run = replay_run(project_id=alice.project.pk, event_ids=["evt_1"], requested_by="ops@x", reason="why")
    dry = replay_run(project_id=alice.project.pk, event_ids=["evt_1"], requested_by="ops@x", dry_run=True)
    audits = AuditLog.objects.filter(action__startswith="replay.").order_by("occurred_at", "id")
    assert [(a.action, a.target, a.actor, a.project_id) for a in audits] == [
        ("replay.run", f"replay #{run.pk}", "ops@x", alice.project.pk),
        ("replay.dry_run", f"replay #{dry.pk}", "ops@x", alice.project.pk),
    ]
    assert audits[0].reason == "why"
    assert audits[0].after == run.counts


def test_the_api_answers_202_with_the_run_and_a_worker_finishes_it(
    client: Client, effect_handler: Any, alice: Tenant
) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))
    with committed():  # the task is enqueued on commit (and runs eagerly in tests)
        response = alice.client().post(REPLAYS, {"event_ids": ["evt_1"], "dry_run": True}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    # The answer does not wait for the work: the run as it was created.
    assert body["status"] == "running"
    assert body["counts"] == {"selected": 1}
    assert body["results"] == [] and body["finished_at"] is None and body["error"] == ""
    assert body["dry_run"] is True
    assert body["project_id"] == alice.project.pk
    assert body["requested_by"].startswith("app:")
    assert body["url"] == f"{REPLAYS}/{body['id']}"
    assert response["Location"] == body["url"]
    # Polling its URL shows what the worker did.
    detail = alice.client().get(body["url"])
    assert detail.status_code == 200
    done = detail.json()
    assert done["status"] == "succeeded"
    assert done["counts"] == {"selected": 1, "processed": 1, "ignored": 0, "failed": 0, "skipped": 0}
    assert [r["event_id"] for r in done["results"]] == ["evt_1"]
    assert done["finished_at"] is not None
    assert {k: v for k, v in done.items() if k not in ("status", "counts", "results", "finished_at")} == {
        k: v for k, v in body.items() if k not in ("status", "counts", "results", "finished_at")
    }
    assert effects() == 1  # a dry run changed nothing


def test_a_real_replay_through_the_api_runs_in_the_worker(client: Client, effect_handler: Any, alice: Tenant) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))
    with committed():
        response = alice.client().post(REPLAYS, {"since": "2023-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 202
    run = ReplayRun.objects.get(pk=response.json()["id"])
    assert run.status == "succeeded" and run.dry_run is False
    assert run.counts["processed"] == 1
    assert effects("evt_1") == 1  # applied once: replaying it changed nothing


def test_the_run_is_not_started_before_the_request_commits(client: Client, effect_handler: Any, alice: Tenant) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))
    response = alice.client().post(REPLAYS, {"event_ids": ["evt_1"]}, format="json")  # never committed
    assert response.status_code == 202
    assert alice.client().get(response["Location"]).json()["status"] == "running"


def test_a_selection_over_the_cap_is_a_400_and_no_run(
    client: Client, effect_handler: Any, alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100), ("evt_2", 1_700_000_200))
    monkeypatch.setattr("apps.webhooks.replays.MAX_EVENTS", 1)
    response = alice.client().post(REPLAYS, {"since": "2023-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400
    assert "More than 1 events match" in response.json()["detail"]
    assert ReplayRun.objects.count() == 0


def test_a_run_whose_task_raises_is_marked_failed(
    client: Client, effect_handler: Any, alice: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))

    def crash(**kwargs: Any) -> None:
        raise RuntimeError("audit store down")

    monkeypatch.setattr("apps.webhooks.replays.audit_record", crash)
    with committed():  # the eager task raises inside a robust on_commit: logged, not raised here
        response = alice.client().post(REPLAYS, {"event_ids": ["evt_1"]}, format="json")
    assert response.status_code == 202
    run = alice.client().get(response["Location"]).json()
    assert run["status"] == "failed"
    assert run["error"] == "RuntimeError: audit store down"
    assert run["finished_at"] is not None


def test_a_finished_run_is_not_run_again(client: Client, effect_handler: Any, alice: Tenant) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))
    run = replay_run(project_id=alice.project.pk, event_ids=["evt_1"], requested_by="ops")
    assert replay_run_task.delay(run.pk).get() == "succeeded"
    assert AuditLog.objects.filter(target=f"replay #{run.pk}").count() == 1


def test_the_api_needs_the_ops_scope(db: None) -> None:
    tenant = make_tenant("gamma", scopes=["billing:read"])
    response = tenant.client().post(REPLAYS, {"event_ids": ["evt_1"]}, format="json")
    assert response.status_code == 403
    assert "ops" in response.json()["detail"]
    assert tenant.client().get(f"{REPLAYS}/1").status_code == 403


def test_the_api_needs_a_selector(alice: Tenant) -> None:
    response = alice.client().post(REPLAYS, {"dry_run": True}, format="json")
    assert response.status_code == 400
    assert ReplayRun.objects.count() == 0


def test_bob_cannot_read_alices_run_nor_replay_her_events(
    client: Client, effect_handler: Any, alice: Tenant, bob: Tenant
) -> None:
    _applied(client, alice, ("evt_alice", 1_700_000_100))
    with committed():
        run = alice.client().post(REPLAYS, {"event_ids": ["evt_alice"]}, format="json").json()
    assert bob.client().get(f"{REPLAYS}/{run['id']}").status_code == 404
    with committed():
        bobs = bob.client().post(REPLAYS, {"event_ids": ["evt_alice"]}, format="json").json()
    assert bobs["counts"]["selected"] == 0
    finished = bob.client().get(bobs["url"]).json()
    assert finished["status"] == "succeeded"
    assert finished["counts"]["selected"] == 0
    assert finished["results"] == []
    assert effects("evt_alice") == 1  # only alice's own delivery


def test_the_api_post_is_idempotent(client: Client, effect_handler: Any, alice: Tenant) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))
    api = alice.client()
    first = api.post(REPLAYS, {"event_ids": ["evt_1"]}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    second = api.post(REPLAYS, {"event_ids": ["evt_1"]}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert ReplayRun.objects.count() == 1


def test_the_command_prints_each_event_and_a_summary(client: Client, handlers: dict[str, Any], alice: Tenant) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100), ("evt_2", 1_700_000_200))
    registry.handles("test.thing")(idempotent_effect)
    out = StringIO()
    call_command(
        "replay_events", "--ids", "evt_1,evt_2", "--dry-run", "--reason", "try", "--type", "test.thing", stdout=out
    )
    text = out.getvalue()
    assert "evt_1 test.thing: processed" in text
    assert "    effect for evt_2" in text
    assert "dry run (nothing changed)" in text and "processed=2" in text
    assert effects() == 0
    call_command("replay_events", "--since", "2023-01-01T00:00:00Z", stdout=StringIO())
    assert effects() == 2


def test_the_command_scopes_to_a_project_and_checks_its_arguments(
    client: Client, effect_handler: Any, alice: Tenant, bob: Tenant
) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))
    out = StringIO()
    call_command("replay_events", "--ids", "evt_1", "--project", "bravo", stdout=out)
    assert "selected=0" in out.getvalue()
    with pytest.raises(CommandError, match="at least one"):
        call_command("replay_events")
    with pytest.raises(CommandError, match="no project"):
        call_command("replay_events", "--ids", "evt_1", "--project", "nope")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("replay_events", "--since", "last tuesday")


def test_the_admin_actions_replay_and_dry_run_the_selection(
    client: Client, admin_client: Client, admin_user: User, handlers: dict[str, Any], alice: Tenant
) -> None:
    _applied(client, alice, ("evt_1", 1_700_000_100))
    registry.handles("test.thing")(idempotent_effect)
    row = ProcessorEvent.objects.get()
    url = "/admin/webhooks/processorevent/"
    # The actions ask for a reason first (tests/admin/test_reason_actions.py); this posts it.
    dry = admin_client.post(
        url, {"action": "dry_run_selected", "_selected_action": [row.pk], "reason": "check"}, follow=True
    )
    assert "Dry-run replay" in dry.content.decode() and "processed 1" in dry.content.decode()
    assert effects() == 0
    admin_client.post(url, {"action": "replay_selected", "_selected_action": [row.pk], "reason": "fix"}, follow=True)
    assert effects("evt_1") == 1
    runs = ReplayRun.objects.order_by("id")
    assert [(r.dry_run, r.requested_by) for r in runs] == [(True, "admin:admin"), (False, "admin:admin")]
    assert admin_client.get(f"{url}{row.pk}/change/").status_code == 200
    assert admin_client.get(f"/admin/webhooks/replayrun/{runs[0].pk}/change/").status_code == 200
    assert admin_client.get(url, {"status": "processed", "q": "evt_1"}).status_code == 200
