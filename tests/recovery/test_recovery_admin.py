"""The recovery admin: runs and attempts are read-only records finance can read and filter; a
recovery is started by hand only with common.run_job, through the job's lock, and audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from apps.common.models import AuditLog, JobRun
from apps.recovery.models import RecoveryAttempt, RecoveryRun
from tests.factories import RecoveryAttemptFactory, RecoveryRunFactory
from tests.recovery.conftest import invoice_session, valid_recovery_url

pytestmark = pytest.mark.django_db

RUNS = "/admin/recovery/recoveryrun/"
ATTEMPTS = "/admin/recovery/recoveryattempt/"
RUN_NOW = "/admin/recovery/recoveryrun/run-now/"


def _staff(client: Client, username: str, *perms: str) -> Client:
    user = get_user_model().objects.create_user(username, f"{username}@example.invalid", "pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client.force_login(user)
    return client


def _all_recovery_perms() -> list[str]:
    return [
        f"recovery.{action}_{model}"
        for model in ("recoveryrun", "recoveryattempt")
        for action in ("view", "add", "change", "delete")
    ]


def _offered(client: Client, url: str) -> set[str]:
    form = client.get(url).context["action_form"]
    return set(dict(form.fields["action"].choices)) - {""} if form is not None else set()


def test_a_run_shows_its_counts_and_errors_readably_and_nobody_changes_it(client: Client) -> None:
    staff = _staff(client, "finance", *_all_recovery_perms())
    run = RecoveryRunFactory.create(
        counts={"examined": 4, "expired": 7, "abandoned": 3, "recovered": 2, "notified": 1, "failed": 1},
        errors=["attempt #9 (session #3) slack: Slack answered HTTP 500: <b>down</b>"],
        status="succeeded",
    )

    listing = staff.get(RUNS, {"status__exact": "succeeded", "trigger__exact": "scheduled"})
    page = staff.get(f"{RUNS}{run.pk}/change/")

    assert [r.pk for r in listing.context["cl"].result_list] == [run.pk]
    row_html = listing.content.decode()
    for figure in ('<td class="field-examined">4</td>', '<td class="field-expired">7</td>'):
        assert figure in row_html
    assert '<td class="field-error_count">1</td>' in row_html
    html = page.content.decode()
    assert "&quot;recovered&quot;: 2" in html
    assert "Slack answered HTTP 500: &lt;b&gt;down&lt;/b&gt;" in html  # escaped, not markup
    assert f"{ATTEMPTS}?run__id__exact={run.pk}" in html
    assert page.context["has_change_permission"] is False
    assert staff.post(f"{RUNS}{run.pk}/change/", {"status": "failed"}).status_code == 403
    assert staff.get(f"{RUNS}add/").status_code == 403
    assert staff.post(f"{RUNS}{run.pk}/delete/").status_code == 403
    assert staff.get(RUNS, {"status__exact": "failed"}).context["cl"].result_count == 0


def test_the_run_now_button_needs_run_job_and_starts_a_manual_recovery_audited(client: Client) -> None:
    session = invoice_session(**valid_recovery_url())
    viewer = _staff(Client(), "viewer", "recovery.view_recoveryrun")
    assert "Run a recovery now" not in viewer.get(RUNS).content.decode()
    assert viewer.post(RUN_NOW).status_code == 403
    assert not RecoveryRun.objects.exists()

    ops = _staff(client, "ops", "recovery.view_recoveryrun", "common.run_job")
    assert "Run a recovery now" in ops.get(RUNS).content.decode()  # offered on an empty list
    assert ops.get(RUN_NOW).status_code == 405
    response = ops.post(RUN_NOW, follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:recovery_recoveryrun_changelist")
    # The test settings run Celery tasks eagerly: the job ran as a manual start, under its lock.
    run = RecoveryRun.objects.get()
    assert run.trigger == "manual" and run.status == "succeeded" and run.counts["recovered"] == 1
    assert run.job_run is not None and run.job_run.requested_by == "admin:ops"
    assert RecoveryAttempt.objects.get().session == session
    audit = AuditLog.objects.get(action="job.run_now")
    assert (audit.actor, audit.target) == ("admin:ops", "hosted-session-recovery")
    assert any("Sent hosted-session-recovery to a worker" in str(m) for m in response.context["messages"])


def test_the_run_now_action_is_offered_only_with_run_job(client: Client) -> None:
    run = RecoveryRunFactory.create()
    viewer = _staff(Client(), "viewer", "recovery.view_recoveryrun")
    assert "run_now" not in _offered(viewer, RUNS)
    ops = _staff(client, "ops", "recovery.view_recoveryrun", "common.run_job")
    assert "run_now" in _offered(ops, RUNS)

    ops.post(RUNS, {"action": "run_now", "_selected_action": [run.pk], "index": 0})

    assert JobRun.objects.filter(job="hosted-session-recovery", trigger="manual", requested_by="admin:ops").exists()
    assert RecoveryRun.objects.filter(trigger="manual").count() == 1


def test_attempts_filter_by_channel_status_and_method_and_link_their_sessions(client: Client) -> None:
    staff = _staff(client, "finance", *_all_recovery_perms())
    emailed = RecoveryAttemptFactory.create()
    failed_slack = RecoveryAttemptFactory.create(
        number=3,
        channel="slack",
        notified_channels=[],
        notification_status="failed",
        notification_error="slack: Slack answered HTTP 500: internal_error",
        notification_tries=2,
        notified_at=None,
    )
    regenerated = RecoveryAttemptFactory.create(method="regenerated", channel="email+slack")

    def listed(**filters: Any) -> list[int]:
        return [a.pk for a in staff.get(ATTEMPTS, filters).context["cl"].result_list]

    assert listed(channel__exact="slack") == [failed_slack.pk]
    assert listed(notification_status__exact="failed") == [failed_slack.pk]
    assert listed(method__exact="regenerated") == [regenerated.pk]
    assert sorted(listed(notification_status__exact="sent")) == sorted([emailed.pk, regenerated.pk])
    page = staff.get(f"{ATTEMPTS}{failed_slack.pk}/change/")
    html = page.content.decode()
    assert reverse("admin:checkout_checkoutsession_change", args=[failed_slack.session_id]) in html
    assert "slack: Slack answered HTTP 500: internal_error" in html
    assert page.context["has_change_permission"] is False
    assert staff.post(f"{ATTEMPTS}{failed_slack.pk}/change/", {"notification_status": "sent"}).status_code == 403
