"""The reconciliation API (scope ops): start a run (202, poll), one run per project (409), read runs,
list and read discrepancies with filters, resolve one; all within the key's project."""

from __future__ import annotations

from typing import Any

import pytest

from apps.common.models import AuditLog
from apps.reconciliation.models import Discrepancy, ReconciliationRun
from tests.conftest import Tenant, committed, make_tenant
from tests.factories import DiscrepancyFactory, ReconciliationRunFactory

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/billing/reconciliation/runs"
DISCREPANCIES = "/api/v1/billing/reconciliation/discrepancies"

RUN_FIELDS = {
    "id",
    "url",
    "project_id",
    "trigger",
    "mode",
    "days_back",
    "dry_run",
    "status",
    "started_at",
    "finished_at",
    "counts",
    "summary",
    "cursors",
    "stripe_requests",
    "db_writes",
    "duration_ms",
    "error",
    "requested_by",
    "resumed_from",
}
DISCREPANCY_FIELDS = {
    "id",
    "url",
    "project_id",
    "run_id",
    "kind",
    "object_type",
    "stripe_id",
    "user_id",
    "local_value",
    "stripe_value",
    "detected_at",
    "status",
    "resolution_action",
    "resolved_by",
    "resolved_at",
    "note",
}


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- starting a run -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_start_answers_202_with_the_run_and_its_url_and_the_worker_finishes_it(
    alice: Tenant, stripe_sandbox: Any
) -> None:
    with committed():  # the worker task is enqueued on commit (and runs eagerly in tests)
        response = alice.client().post(
            RUNS, {"project_id": alice.project.pk, "mode": "incremental", "days_back": 3}, format="json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == RUN_FIELDS
    # The answer does not wait for the work: the run as it was created.
    assert body["status"] == "running" and body["finished_at"] is None
    assert (body["trigger"], body["mode"], body["days_back"], body["dry_run"]) == ("api", "incremental", 3, False)
    assert body["project_id"] == alice.project.pk
    assert body["requested_by"].startswith("app:") and alice.app.name in body["requested_by"]
    assert body["url"] == f"{RUNS}/{body['id']}" and response["Location"] == body["url"]
    # Polling its URL shows what the worker did: a project with nothing at Stripe reconciles cleanly.
    done = alice.client().get(response["Location"])
    assert done.status_code == 200
    assert done.json()["status"] == "succeeded", done.json()
    assert done.json()["finished_at"] is not None


def test_a_start_while_a_run_of_the_project_is_running_is_409_naming_it(alice: Tenant, bob: Tenant) -> None:
    running = ReconciliationRunFactory.create(project=alice.project, status="running", mode="incremental")
    response = alice.client().post(RUNS, {"project_id": alice.project.pk, "mode": "full"}, format="json")
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["run_id"] == running.pk and body["run_url"] == f"{RUNS}/{running.pk}"
    assert f"Run {running.pk} of this project is in progress (incremental, scheduled" in body["detail"]
    assert f"Poll {RUNS}/{running.pk}" in body["detail"]
    assert ReconciliationRun.objects.filter(project=alice.project).count() == 1
    # Another project is not held up by it.
    other = bob.client().post(RUNS, {"project_id": bob.project.pk, "mode": "full"}, format="json")
    assert other.status_code == 202, other.content


@pytest.mark.parametrize("days_back", [0, 31, 365, -1])
def test_days_back_outside_one_to_thirty_is_400_and_no_run(alice: Tenant, days_back: int) -> None:
    response = alice.client().post(
        RUNS, {"project_id": alice.project.pk, "mode": "incremental", "days_back": days_back}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()) == ["days_back"]
    assert ReconciliationRun.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "sideways"}, "mode"),
        ({}, "mode"),
        ({"mode": "full", "dry_run": "yes"}, "dry_run"),
        ({"mode": "full", "days_back": "3"}, "days_back"),  # a string is not an integer
    ],
)
def test_a_bad_body_is_400_naming_the_field(alice: Tenant, body: dict[str, Any], field: str) -> None:
    response = alice.client().post(RUNS, {"project_id": alice.project.pk, **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert ReconciliationRun.objects.count() == 0


def test_project_id_is_required_and_must_be_the_keys_project(alice: Tenant, bob: Tenant) -> None:
    missing = alice.client().post(RUNS, {"mode": "full"}, format="json")
    assert missing.status_code == 400 and "project_id" in missing.json()
    theirs = alice.client().post(RUNS, {"project_id": bob.project.pk, "mode": "full"}, format="json")
    assert theirs.status_code == 403 and theirs.json() == {"detail": "Project ID does not match"}
    assert ReconciliationRun.objects.count() == 0


def test_the_same_idempotency_key_answers_the_first_run_again(alice: Tenant) -> None:
    api = alice.client()
    body = {"project_id": alice.project.pk, "mode": "full", "dry_run": True}
    first = api.post(RUNS, body, format="json", HTTP_IDEMPOTENCY_KEY="recon-1")
    again = api.post(RUNS, body, format="json", HTTP_IDEMPOTENCY_KEY="recon-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    other = api.post(RUNS, {**body, "dry_run": False}, format="json", HTTP_IDEMPOTENCY_KEY="recon-1")
    assert other.status_code == 409
    assert ReconciliationRun.objects.count() == 1


def test_every_operation_needs_the_ops_scope(alice: Tenant) -> None:
    reader = make_tenant("gamma", scopes=["billing:read", "billing:write", "entitlements:read"])
    run = ReconciliationRunFactory.create(project=reader.project)
    found = DiscrepancyFactory.create(run=run)
    api = reader.client()
    for response in (
        api.post(RUNS, {"project_id": reader.project.pk, "mode": "full"}, format="json"),
        api.get(RUNS),
        api.get(f"{RUNS}/{run.pk}"),
        api.get(DISCREPANCIES),
        api.get(f"{DISCREPANCIES}/{found.pk}"),
        api.post(f"{DISCREPANCIES}/{found.pk}/resolve", {"action": "ignore", "note": "n"}, format="json"),
    ):
        assert response.status_code == 403
        assert "ops" in response.json()["detail"]
    assert Discrepancy.objects.get(pk=found.pk).status == "open"


# --- reading runs ------------------------------------------------------------------------------------------


def test_the_runs_list_is_the_projects_newest_first_filtered_and_paginated(alice: Tenant, bob: Tenant) -> None:
    full = ReconciliationRunFactory.create(project=alice.project, mode="full", trigger="scheduled")
    failed = ReconciliationRunFactory.create(project=alice.project, mode="incremental", status="failed", days_back=7)
    running = ReconciliationRunFactory.create(
        project=alice.project, mode="incremental", trigger="api", status="running"
    )
    ReconciliationRunFactory.create(project=bob.project)
    api = alice.client()
    assert _ids(api.get(RUNS)) == [running.pk, failed.pk, full.pk]
    assert _ids(api.get(RUNS, {"status": "failed"})) == [failed.pk]
    assert _ids(api.get(RUNS, {"mode": "incremental"})) == [running.pk, failed.pk]
    assert _ids(api.get(RUNS, {"trigger": "api"})) == [running.pk]
    first = api.get(RUNS, {"limit": "2"}).json()
    assert [r["id"] for r in first["results"]] == [running.pk, failed.pk]
    rest = api.get(RUNS, {"limit": "2", "cursor": first["next_cursor"]}).json()
    assert rest == {"results": rest["results"], "next_cursor": None}
    assert [r["id"] for r in rest["results"]] == [full.pk]
    assert api.get(RUNS, {"status": "paused"}).status_code == 400
    assert api.get(RUNS, {"mode": ""}).status_code == 400


def test_a_run_reads_with_its_counts_and_cursors(alice: Tenant) -> None:
    run = ReconciliationRunFactory.create(
        project=alice.project,
        counts={"charge": {"checked": 5, "drift_found": 1}},
        cursors={"charge": {"starting_after": "ch_9", "pages": 2}},
        summary={"drift_detected": 1},
        stripe_requests=7,
        db_writes=2,
    )
    body = alice.client().get(f"{RUNS}/{run.pk}").json()
    assert set(body) == RUN_FIELDS
    assert body["counts"] == {"charge": {"checked": 5, "drift_found": 1}}
    assert body["cursors"] == {"charge": {"starting_after": "ch_9", "pages": 2}}
    assert (body["summary"], body["stripe_requests"], body["db_writes"]) == ({"drift_detected": 1}, 7, 2)
    assert body["started_at"].endswith("Z") and body["finished_at"].endswith("Z")


def test_another_projects_run_is_404(alice: Tenant, bob: Tenant) -> None:
    theirs = ReconciliationRunFactory.create(project=bob.project)
    response = alice.client().get(f"{RUNS}/{theirs.pk}")
    assert response.status_code == 404
    assert alice.client().get(f"{RUNS}/999999999").status_code == 404


# --- discrepancies -----------------------------------------------------------------------------------------


def test_the_discrepancy_list_filters_by_status_run_kind_and_user(alice: Tenant, bob: Tenant) -> None:
    run = ReconciliationRunFactory.create(project=alice.project)
    later = ReconciliationRunFactory.create(project=alice.project)
    status = DiscrepancyFactory.create(run=run, user_id="u1")
    refund = DiscrepancyFactory.create(
        run=run, kind="charge_amount_refunded", object_type="charge", stripe_id="ch_1", user_id="u2"
    )
    closed = DiscrepancyFactory.create(run=later, user_id="u1", status="auto_resolved", resolution_action="auto")
    theirs = DiscrepancyFactory.create(run__project=bob.project, user_id="u1")
    api = alice.client()
    assert _ids(api.get(DISCREPANCIES)) == [closed.pk, refund.pk, status.pk]
    assert _ids(api.get(DISCREPANCIES, {"status": "open"})) == [refund.pk, status.pk]
    assert _ids(api.get(DISCREPANCIES, {"run": str(run.pk)})) == [refund.pk, status.pk]
    assert _ids(api.get(DISCREPANCIES, {"kind": "charge_amount_refunded"})) == [refund.pk]
    assert _ids(api.get(DISCREPANCIES, {"user_id": "u1"})) == [closed.pk, status.pk]
    assert _ids(api.get(DISCREPANCIES, {"user_id": "u1", "status": "open"})) == [status.pk]
    # Another project's run selects nothing of this project's (and shows nothing of its own).
    assert _ids(api.get(DISCREPANCIES, {"run": str(theirs.run_id)})) == []
    page = api.get(DISCREPANCIES, {"limit": "1"}).json()
    assert [r["id"] for r in page["results"]] == [closed.pk] and page["next_cursor"]
    assert set(page["results"][0]) == DISCREPANCY_FIELDS


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"run": "abc"}, "run"),
        ({"run": "0"}, "run"),
        ({"kind": ""}, "kind"),
        ({"kind": "k" * 65}, "kind"),
        ({"user_id": "u" * 256}, "user_id"),
    ],
)
def test_a_bad_filter_is_400_naming_it(alice: Tenant, query: dict[str, str], field: str) -> None:
    response = alice.client().get(DISCREPANCIES, query)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_discrepancy_reads_with_both_values(alice: Tenant, bob: Tenant) -> None:
    found = DiscrepancyFactory.create(
        run__project=alice.project, local_value={"status": "active"}, stripe_value=None, user_id="u9"
    )
    body = alice.client().get(f"{DISCREPANCIES}/{found.pk}").json()
    assert body == {
        "id": found.pk,
        "url": f"{DISCREPANCIES}/{found.pk}",
        "project_id": alice.project.pk,
        "run_id": found.run_id,
        "kind": "subscription_status",
        "object_type": "subscription",
        "stripe_id": found.stripe_id,
        "user_id": "u9",
        "local_value": {"status": "active"},
        "stripe_value": None,
        "detected_at": body["detected_at"],
        "status": "open",
        "resolution_action": "",
        "resolved_by": "",
        "resolved_at": None,
        "note": "",
    }
    assert body["detected_at"].endswith("Z")
    assert bob.client().get(f"{DISCREPANCIES}/{found.pk}").status_code == 404


# --- resolving ---------------------------------------------------------------------------------------------


def test_resolving_answers_200_with_the_discrepancy_and_audits_the_key(alice: Tenant) -> None:
    found = DiscrepancyFactory.create(run__project=alice.project)
    response = alice.client().post(
        f"{DISCREPANCIES}/{found.pk}/resolve", {"action": "keep_local", "note": "ours is right"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["resolution_action"], body["note"]) == ("resolved", "keep_local", "ours is right")
    assert body["resolved_by"] == f"app:{alice.app.name} (key {alice.key.split('_')[1]})"
    assert body["resolved_at"].endswith("Z")
    entry = AuditLog.objects.get(action="discrepancy.keep_local")
    assert (entry.actor, entry.reason, entry.project_id) == (body["resolved_by"], "ours is right", alice.project.pk)
    assert alice.client().get(f"{DISCREPANCIES}/{found.pk}").json() == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "ignore"}, "note"),
        ({"action": "ignore", "note": ""}, "note"),
        ({"action": "ignore", "note": "   "}, "note"),
        ({"action": "ignore", "note": "n" * 2001}, "note"),
        ({"action": "auto", "note": "n"}, "action"),  # only a run corrects automatically
        ({"action": "gone", "note": "n"}, "action"),
        ({"note": "n"}, "action"),
    ],
)
def test_a_resolve_without_a_note_or_with_a_bad_action_is_400(alice: Tenant, body: dict[str, Any], field: str) -> None:
    found = DiscrepancyFactory.create(run__project=alice.project)
    response = alice.client().post(f"{DISCREPANCIES}/{found.pk}/resolve", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Discrepancy.objects.get(pk=found.pk).status == "open"
    assert AuditLog.objects.count() == 0


def test_a_discrepancy_that_is_not_open_is_409_naming_its_status(alice: Tenant) -> None:
    found = DiscrepancyFactory.create(
        run__project=alice.project, status="ignored", resolution_action="ignore", resolved_by="admin:finance"
    )
    response = alice.client().post(
        f"{DISCREPANCIES}/{found.pk}/resolve", {"action": "keep_local", "note": "n"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["detail"].startswith(f"Discrepancy {found.pk} is ignored (ignore by admin:finance")
    assert Discrepancy.objects.get(pk=found.pk).resolution_action == "ignore"


def test_another_projects_discrepancy_cannot_be_resolved(alice: Tenant, bob: Tenant) -> None:
    theirs = DiscrepancyFactory.create(run__project=bob.project)
    response = alice.client().post(
        f"{DISCREPANCIES}/{theirs.pk}/resolve", {"action": "ignore", "note": "mine now"}, format="json"
    )
    assert response.status_code == 404
    assert "sub_" not in response.content.decode()
    assert Discrepancy.objects.get(pk=theirs.pk).status == "open"
    assert AuditLog.objects.count() == 0
