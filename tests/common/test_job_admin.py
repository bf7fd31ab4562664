"""The periodic jobs in the admin: their runs, their policies (edited without a deploy), and "Run now"."""

from __future__ import annotations

import threading
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from apps.common.jobs.lock import job_lock
from apps.common.models import AuditLog, JobPolicy, JobRun
from billing_service.beat_schedule import BEAT_SCHEDULE, scheduled_task
from tests.factories import JobPolicyFactory, JobRunFactory

pytestmark = pytest.mark.django_db

RUNS = "/admin/common/jobrun/"
POLICIES = "/admin/common/jobpolicy/"
JOB = "scheduler-heartbeat"  # its body only writes a Heartbeat row: harmless to run in a test


def _staff(client: Client, username: str, *codenames: str) -> Client:
    user = get_user_model().objects.create_user(username, f"{username}@example.invalid", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="common", codename__in=codenames))
    client.force_login(user)
    return client


def _install() -> None:
    call_command("install_beat_schedule", stdout=StringIO())


def _offered(client: Client, url: str) -> set[str]:
    form = client.get(url).context["action_form"]
    return set(dict(form.fields["action"].choices)) - {""} if form is not None else set()


def _messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _policy_form(policy: JobPolicy, **changes: Any) -> dict[str, Any]:
    fields = ("max_attempts", "base_backoff_seconds", "backoff_multiplier", "max_backoff_seconds")
    data = {name: getattr(policy, name) for name in (*fields, "jitter_seconds", "timeout_seconds")}
    return {**data, **changes, "_save": "Save"}


# --- runs ------------------------------------------------------------------------------------------


def test_the_runs_list_filters_by_job_and_by_outcome(client: Client) -> None:
    staff = _staff(client, "viewer", "view_jobrun")
    wanted = JobRunFactory.create(job="sweep-webhook-ledger", outcome="failed", error="OperationalError: gone")
    JobRunFactory.create(job="sweep-webhook-ledger", outcome="succeeded")
    JobRunFactory.create(job="purge-job-runs", outcome="failed")
    JobRunFactory.create(job=JOB, outcome="skipped")

    page = staff.get(RUNS, {"job": "sweep-webhook-ledger", "outcome__exact": "failed"})

    assert page.status_code == 200
    assert [run.pk for run in page.context["cl"].result_list] == [wanted.pk]
    assert "OperationalError: gone" in page.content.decode()
    by_job = staff.get(RUNS, {"job": "sweep-webhook-ledger"}).context["cl"].result_list
    assert {run.outcome for run in by_job} == {"failed", "succeeded"}
    skipped = staff.get(RUNS, {"outcome__exact": "skipped"}).context["cl"].result_list
    assert [run.job for run in skipped] == [JOB]
    # The job filter offers every declared job, whether or not it has run yet.
    job_filter = page.context["cl"].filter_specs[0]
    assert [value for value, _ in job_filter.lookup_choices] == [entry.name for entry in BEAT_SCHEDULE]


def test_a_run_page_shows_its_summary_and_error_readably_and_cannot_be_changed(client: Client) -> None:
    staff = _staff(client, "viewer", "view_jobrun", "change_jobrun", "add_jobrun", "delete_jobrun")
    run = JobRunFactory.create(job="purge-job-runs", summary={"deleted": 3}, error="RuntimeError: <boom>")

    page = staff.get(f"{RUNS}{run.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "<pre>{\n  &quot;deleted&quot;: 3\n}</pre>" in html
    assert "RuntimeError: &lt;boom&gt;" in html  # escaped, not markup
    # Evidence: even with every model permission, no one adds, edits or deletes a run by hand.
    assert page.context["has_change_permission"] is False
    assert staff.post(f"{RUNS}{run.pk}/change/", {"outcome": "succeeded"}).status_code == 403
    assert staff.get(f"{RUNS}add/").status_code == 403
    assert staff.post(f"{RUNS}{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert JobRun.objects.get(pk=run.pk).outcome == "succeeded"


# --- policies --------------------------------------------------------------------------------------


def test_an_operator_edits_a_policy_and_install_beat_schedule_keeps_the_edit_unless_reset(client: Client) -> None:
    _install()
    staff = _staff(client, "operator", "view_jobpolicy", "change_jobpolicy")
    policy = JobPolicy.objects.get(job="purge-job-runs")

    saved = staff.post(
        f"{POLICIES}{policy.pk}/change/",
        _policy_form(policy, max_attempts=5, base_backoff_seconds=45, backoff_multiplier="1.5", timeout_seconds=900),
    )

    assert saved.status_code == 302, saved.content.decode()[:2000]
    edited = JobPolicy.objects.get(pk=policy.pk)
    assert (edited.max_attempts, edited.base_backoff_seconds, str(edited.backoff_multiplier)) == (5, 45, "1.50")
    assert edited.timeout_seconds == 900
    assert "(edited: max_attempts, base_backoff_seconds, backoff_multiplier, timeout_seconds)" in (
        staff.get(POLICIES).content.decode()
    )

    _install()
    kept = JobPolicy.objects.get(pk=policy.pk)
    assert (kept.max_attempts, kept.base_backoff_seconds, kept.timeout_seconds) == (5, 45, 900)

    call_command("install_beat_schedule", "--reset", stdout=StringIO())
    declared = scheduled_task("purge-job-runs").policy
    reset = JobPolicy.objects.get(pk=policy.pk)
    assert (reset.max_attempts, reset.base_backoff_seconds, reset.timeout_seconds) == (
        declared.max_attempts,
        declared.base_backoff_seconds,
        declared.timeout_seconds,
    )


def test_a_max_backoff_below_the_base_is_refused_on_its_field(client: Client) -> None:
    policy = JobPolicyFactory.create(job="purge-job-runs")
    staff = _staff(client, "operator", "view_jobpolicy", "change_jobpolicy")

    page = staff.post(
        f"{POLICIES}{policy.pk}/change/", _policy_form(policy, base_backoff_seconds=120, max_backoff_seconds=60)
    )

    assert page.status_code == 200
    form = page.context["adminform"].form
    assert form.errors == {"max_backoff_seconds": ["must be at least base_backoff_seconds"]}
    assert "must be at least base_backoff_seconds" in page.content.decode()
    assert JobPolicy.objects.get(pk=policy.pk).base_backoff_seconds == policy.base_backoff_seconds


def test_policies_are_neither_added_nor_deleted_in_the_admin_even_by_a_superuser(admin_client: Client) -> None:
    policy = JobPolicyFactory.create(job="purge-job-runs")
    assert admin_client.get(f"{POLICIES}add/").status_code == 403
    assert admin_client.post(f"{POLICIES}{policy.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in _offered(admin_client, POLICIES)
    assert JobPolicy.objects.filter(pk=policy.pk).exists()


def test_the_policy_list_shows_schedule_enabled_last_run_and_runs_in_one_query_for_all_jobs(client: Client) -> None:
    staff = _staff(client, "viewer", "view_jobpolicy")
    JobPolicyFactory.create(job=JOB)
    with CaptureQueriesContext(connection) as one_job:
        assert staff.get(POLICIES).status_code == 200

    _install()
    PeriodicTask.objects.filter(name="purge-job-runs").update(enabled=False)
    JobRunFactory.create(job="purge-job-runs", outcome="failed")
    JobRunFactory.create(job="purge-job-runs", outcome="skipped")  # later, but it did not run the job
    with CaptureQueriesContext(connection) as every_job:
        page = staff.get(POLICIES)

    assert len(every_job.captured_queries) == len(one_job.captured_queries)
    rows = {policy.job: policy for policy in page.context["cl"].result_list}
    assert set(rows) == {entry.name for entry in BEAT_SCHEDULE}
    purge = rows["purge-job-runs"]
    task = PeriodicTask.objects.get(name="purge-job-runs")
    assert (purge.task_pk, purge.task_enabled, purge.last_outcome) == (task.pk, False, "failed")
    assert purge.task_schedule == "41 3 * * * UTC"
    assert rows["sweep-webhook-ledger"].task_schedule == "every 60 seconds"
    html = page.content.decode()
    assert reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]) in html
    assert f"{RUNS}?job=purge-job-runs" in html


# --- run now ---------------------------------------------------------------------------------------


def test_run_now_by_an_operator_runs_the_job_as_a_manual_start_and_audits_it(client: Client) -> None:
    policy = JobPolicyFactory.create(job=JOB)
    staff = _staff(client, "ops", "view_jobpolicy", "run_job")
    assert "run_now" in _offered(staff, POLICIES)

    # Celery runs eagerly in the tests: the worker's part happens inside this request.
    page = staff.post(POLICIES, {"action": "run_now", "_selected_action": [policy.pk], "index": 0}, follow=True)

    run = JobRun.objects.get(job=JOB)
    assert (run.trigger, run.outcome, run.requested_by) == ("manual", "succeeded", "admin:ops")
    entry = AuditLog.objects.get(action="job.run_now")
    assert (entry.actor, entry.target) == ("admin:ops", JOB)
    assert entry.after == {"task_id": run.task_id, "was_running": False}
    assert run.task_id and any(run.task_id in message for message in _messages(page))
    assert f"{RUNS}?job={JOB}&amp;trigger__exact=manual" in page.content.decode()


def test_a_staff_user_without_run_job_is_not_offered_run_now_and_posting_it_runs_nothing(client: Client) -> None:
    policy = JobPolicyFactory.create(job=JOB)
    # Changing a policy is not running the job: the operator role is its own permission.
    staff = _staff(client, "editor", "view_jobpolicy", "change_jobpolicy")
    assert "run_now" not in _offered(staff, POLICIES)

    staff.post(POLICIES, {"action": "run_now", "_selected_action": [policy.pk], "index": 0})
    button = staff.post(reverse("admin:common_jobpolicy_run_now", args=[policy.pk]))

    assert button.status_code == 403
    assert "Run now" not in staff.get(f"{POLICIES}{policy.pk}/change/").content.decode()
    assert not JobRun.objects.exists()
    assert not AuditLog.objects.filter(action="job.run_now").exists()


def test_the_run_now_button_of_the_policy_page_starts_the_same_manual_run(client: Client) -> None:
    policy = JobPolicyFactory.create(job=JOB)
    staff = _staff(client, "ops", "view_jobpolicy", "run_job")
    url = reverse("admin:common_jobpolicy_run_now", args=[policy.pk])
    assert url in staff.get(f"{POLICIES}{policy.pk}/change/").content.decode()
    assert staff.get(url).status_code == 405  # a GET (a prefetch, a crawler) never starts a job

    page = staff.post(url, follow=True)

    assert page.redirect_chain[-1][0] == f"{POLICIES}{policy.pk}/change/"
    run = JobRun.objects.get(job=JOB)
    assert (run.trigger, run.requested_by) == ("manual", "admin:ops")
    assert AuditLog.objects.filter(action="job.run_now", actor="admin:ops", target=JOB).count() == 1


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_run_now_while_the_job_is_running_is_recorded_skipped_and_says_so(client: Client) -> None:
    policy = JobPolicyFactory.create(job=JOB)
    staff = _staff(client, "ops", "view_jobpolicy", "run_job")
    held = threading.Event()
    release = threading.Event()

    def running_job() -> None:
        # Another worker's run: the lock lives in another database session.
        try:
            with job_lock(JOB) as acquired:
                assert acquired
                held.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=running_job)
    thread.start()
    try:
        assert held.wait(10)
        page = staff.post(POLICIES, {"action": "run_now", "_selected_action": [policy.pk], "index": 0}, follow=True)
    finally:
        release.set()
        thread.join()

    run = JobRun.objects.get(job=JOB)
    assert (run.trigger, run.outcome, run.requested_by) == ("manual", "skipped", "admin:ops")
    assert run.error == "another run of this job holds its lock"
    assert any("will be recorded skipped" in message for message in _messages(page))
    assert AuditLog.objects.get(action="job.run_now").after == {"task_id": run.task_id, "was_running": True}
