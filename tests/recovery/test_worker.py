"""The recovery run: a way back for each abandoned session with attempts left (Stripe's recovery URL
while valid, else a regenerated session), email for early attempts and Slack for later ones, failed
notifications recorded and retried by later runs, attempts stopping at the maximum, the run's row,
the switch, the task and the command.

Regeneration is replaced here by a stand-in that keeps hosted_session_regenerate's contract (claim
under the updated_at token, a new open session linked to the old one); test_regenerate_sandbox.py
runs the real service against the Stripe sandbox.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.checkout.models import CheckoutSession, Invoice
from apps.common.exceptions import Conflict
from apps.common.models import JobRun
from apps.recovery import worker
from apps.recovery.models import RecoveryAttempt, RecoveryRun
from apps.recovery.selectors import Candidate
from apps.recovery.tasks import hosted_session_recovery
from apps.recovery.worker import recovery_run_execute
from billing_service.beat_schedule import scheduled_task
from tests.factories import CheckoutSessionFactory
from tests.recovery.conftest import OPS, SlackReceiver, invoice_session, later, valid_recovery_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("recovery_settings")]

Status = CheckoutSession.Status
Sent = RecoveryAttempt.NotificationStatus


def _run(trigger: str = RecoveryRun.Trigger.SCHEDULED) -> RecoveryRun:
    return recovery_run_execute(trigger=trigger)


@pytest.fixture
def regenerations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, datetime]]:
    """hosted_session_regenerate's contract without Stripe: the claim on (id, updated_at, status),
    the old session `regenerated`, a new open one with a URL linked to it."""
    calls: list[tuple[int, datetime]] = []

    def regenerate(*, session_id: int, expected_updated_at: datetime) -> CheckoutSession:
        calls.append((session_id, expected_updated_at))
        old = CheckoutSession.objects.get(pk=session_id)
        claimed = CheckoutSession.objects.filter(
            pk=session_id, updated_at=expected_updated_at, status__in=[Status.OPEN, Status.EXPIRED, Status.ABANDONED]
        ).update(status=Status.REGENERATED, updated_at=timezone.now())
        if not claimed:
            raise Conflict(f"Session #{session_id} changed since you read it")
        new: CheckoutSession = CheckoutSessionFactory.create(
            customer=old.customer,
            invoice=old.invoice,
            mode=CheckoutSession.Mode.PAYMENT,
            stripe_price_id="",
            regenerated_from=old,
            status=Status.OPEN,
            url=f"https://checkout.example.invalid/pay/regenerated-{session_id}",
            expires_at=timezone.now() + timedelta(hours=24),
        )
        return new

    monkeypatch.setattr(worker, "_regenerate", regenerate)
    return calls


# --- the way back ---------------------------------------------------------------------------------------


def test_a_valid_recovery_url_is_given_back_by_email_to_the_customer_with_finance_in_bcc() -> None:
    session = invoice_session(customer_email="buyer@example.invalid", **valid_recovery_url())
    invoice = session.invoice
    assert invoice is not None

    run = _run()

    attempt = RecoveryAttempt.objects.get(session=session)
    assert (attempt.number, attempt.method, attempt.url) == (1, "stripe_recovery_url", session.recovery_url)
    assert (attempt.channel, attempt.notification_status, attempt.notification_tries) == ("email", "sent", 1)
    assert attempt.notified_channels == ["email"] and attempt.notified_at is not None
    assert attempt.run == run and attempt.new_session is None
    [message] = mail.outbox
    assert message.to == ["buyer@example.invalid"] and message.bcc == [OPS]
    assert message.from_email == "billing@example.invalid"
    assert message.subject == f"Complete your payment: invoice #{invoice.pk} (26.10 USD)"
    for fact in (session.recovery_url, f"Invoice: #{invoice.pk}", "Total: 26.10 USD (2610 in minor units of USD)"):
        assert fact in message.body
    assert f"User: {invoice.user_id}" in message.body
    session.refresh_from_db()
    assert session.status == Status.ABANDONED  # Stripe's link opens a new session; this one waits
    assert session.recovery_attempts == 1 and session.last_recovery_at is not None
    assert session.updated_at == session.last_recovery_at  # the claim is a write: the token moved
    run.refresh_from_db()
    assert run.status == "succeeded" and run.finished_at is not None and run.errors == []
    assert run.counts == {"examined": 1, "expired": 0, "abandoned": 0, "recovered": 1, "notified": 1, "failed": 0}


def test_without_a_customer_address_finance_is_emailed() -> None:
    invoice_session(**valid_recovery_url())
    _run()
    [message] = mail.outbox
    assert message.to == [OPS] and message.bcc == []


def test_an_expired_recovery_url_gives_a_regenerated_session_that_carries_the_count(
    regenerations: list[tuple[int, datetime]],
) -> None:
    session = invoice_session(**valid_recovery_url(recovery_url_expires_at=timezone.now() - timedelta(minutes=1)))

    _run()

    attempt = RecoveryAttempt.objects.get(session=session)
    assert attempt.method == "regenerated" and attempt.new_session is not None
    assert attempt.url == attempt.new_session.url == f"https://checkout.example.invalid/pay/regenerated-{session.pk}"
    session.refresh_from_db()
    # The token passed was the one the claim wrote: regenerate's optimistic lock accepted it.
    assert regenerations == [(session.pk, session.last_recovery_at)]
    assert session.status == Status.REGENERATED and session.recovery_attempts == 1
    new = attempt.new_session
    new.refresh_from_db()
    assert (new.regenerated_from_id, new.status, new.recovery_attempts) == (session.pk, Status.OPEN, 1)
    assert attempt.url in mail.outbox[0].body


def test_no_recovery_url_at_all_also_regenerates(regenerations: list[tuple[int, datetime]]) -> None:
    session = invoice_session()
    _run()
    assert RecoveryAttempt.objects.get(session=session).method == "regenerated"
    assert len(regenerations) == 1


def test_a_regeneration_that_fails_is_recorded_and_does_not_spend_the_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable(**_: Any) -> CheckoutSession:
        raise RuntimeError("Stripe is unavailable")

    monkeypatch.setattr(worker, "_regenerate", unavailable)
    session = invoice_session()
    healthy = invoice_session(**valid_recovery_url())

    run = _run()

    assert not RecoveryAttempt.objects.filter(session=session).exists()
    session.refresh_from_db()
    assert session.recovery_attempts == 0 and session.last_recovery_at is not None  # waits a spacing
    assert RecoveryAttempt.objects.get(session=healthy).notification_status == "sent"  # the run went on
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.counts["failed"] == 1 and run.counts["recovered"] == 1
    assert run.errors == [f"session #{session.pk}: regeneration failed: RuntimeError: Stripe is unavailable"]


def test_an_operators_regenerate_in_between_makes_the_workers_a_conflict(
    regenerations: list[tuple[int, datetime]], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = invoice_session()
    real_claim = worker._claim

    def claim_then_operator_regenerates(candidate: Candidate, at: datetime) -> bool:
        claimed = real_claim(candidate, at)
        # The operator read the token the claim wrote, and regenerated first.
        CheckoutSession.objects.filter(pk=candidate.session_id).update(
            status=Status.REGENERATED, updated_at=at + timedelta(seconds=1)
        )
        return claimed

    monkeypatch.setattr(worker, "_claim", claim_then_operator_regenerates)

    run = _run()

    assert not RecoveryAttempt.objects.exists() and mail.outbox == []
    session.refresh_from_db()
    assert session.recovery_attempts == 0
    run.refresh_from_db()
    assert run.counts["failed"] == 0 and run.counts["recovered"] == 0
    assert run.errors[0].startswith(f"session #{session.pk}: changed before it could be regenerated")


@pytest.mark.parametrize("status", [Invoice.Status.PAID, Invoice.Status.VOID, Invoice.Status.UNCOLLECTIBLE])
def test_sessions_of_settled_or_uncollectible_invoices_get_no_way_back(status: str) -> None:
    invoice_session(invoice_status=status, **valid_recovery_url())
    run = _run()
    assert run.counts["examined"] == 0 and not RecoveryAttempt.objects.exists() and mail.outbox == []


def test_a_stale_read_loses_the_claim() -> None:
    session = invoice_session(recovery_attempts=1)
    assert worker._claim(Candidate(session_id=session.pk, attempts=0), timezone.now()) is False
    assert worker._claim(Candidate(session_id=session.pk, attempts=1), timezone.now()) is True
    session.refresh_from_db()
    assert session.recovery_attempts == 2


# --- attempts over time: email, then Slack, then nothing -----------------------------------------------------


def test_attempts_are_spaced_escalate_to_slack_and_stop_at_the_maximum(slack_receiver: SlackReceiver) -> None:
    session = invoice_session(customer_email="buyer@example.invalid", **valid_recovery_url())
    invoice = session.invoice
    assert invoice is not None

    first = _run()
    again_at_once = _run()  # within HOSTED_RECOVERY_RETRY_AFTER_SECONDS: nothing to do
    with time_machine.travel(later(1.01)):
        second = _run()
    with time_machine.travel(later(2.02)):
        third = _run()
    with time_machine.travel(later(3.03)):
        fourth = _run()

    assert [r.counts["recovered"] for r in (first, again_at_once, second, third, fourth)] == [1, 0, 1, 1, 0]
    attempts = list(RecoveryAttempt.objects.filter(session=session).order_by("number"))
    assert [(a.number, a.channel, a.notification_status) for a in attempts] == [
        (1, "email", "sent"),
        (2, "email", "sent"),
        (3, "slack", "sent"),
    ]
    assert len(mail.outbox) == 2
    [slack] = slack_receiver.bodies
    assert slack["channel"] == "#billing-alerts"
    assert f"Invoice #{invoice.pk} (26.10 USD) of user {invoice.user_id}" in slack["text"]
    assert "attempt 3 of 3" in slack["text"] and session.recovery_url in slack["text"]
    session.refresh_from_db()
    assert session.recovery_attempts == 3
    assert fourth.counts["examined"] == 0


def test_an_attempt_listed_for_both_channels_emails_and_posts(settings: Any, slack_receiver: SlackReceiver) -> None:
    settings.HOSTED_RECOVERY_SLACK_ATTEMPTS = "1,3"
    invoice_session(**valid_recovery_url())
    run = _run()
    attempt = RecoveryAttempt.objects.get()
    assert (attempt.channel, attempt.notified_channels, attempt.notification_status) == (
        "email+slack",
        ["email", "slack"],
        "sent",
    )
    assert len(mail.outbox) == 1 and len(slack_receiver.bodies) == 1
    assert run.counts["notified"] == 2


def test_an_attempt_in_no_channels_list_is_recorded_as_skipped(settings: Any) -> None:
    settings.HOSTED_RECOVERY_EMAIL_ATTEMPTS = "2"
    invoice_session(**valid_recovery_url())
    _run()
    attempt = RecoveryAttempt.objects.get()
    assert (attempt.channel, attempt.notification_status, attempt.notification_tries) == ("", "skipped", 0)
    assert mail.outbox == []


# --- failed notifications ----------------------------------------------------------------------------------


def test_a_failed_slack_message_is_recorded_and_retried_by_the_next_run(slack_receiver: SlackReceiver) -> None:
    session = invoice_session(recovery_attempts=2, **valid_recovery_url())
    slack_receiver.answers = [500]

    failed_run = _run()

    attempt = RecoveryAttempt.objects.get(session=session)
    assert (attempt.number, attempt.channel, attempt.notification_status) == (3, "slack", "failed")
    assert attempt.notification_tries == 1
    assert attempt.notification_error == "slack: Slack answered HTTP 500: internal_error"
    assert failed_run.counts == {
        "examined": 1, "expired": 0, "abandoned": 0, "recovered": 1, "notified": 0, "failed": 1,
    }  # fmt: skip
    assert failed_run.status == "succeeded"
    error = "slack: Slack answered HTTP 500: internal_error"
    assert failed_run.errors == [f"attempt #{attempt.pk} (session #{session.pk}) {error}"]

    retry_run = _run()

    attempt.refresh_from_db()
    assert (attempt.notification_status, attempt.notification_tries, attempt.notification_error) == ("sent", 2, "")
    assert retry_run.counts["notified"] == 1 and retry_run.counts["recovered"] == 0
    assert len(slack_receiver.bodies) == 2  # the failed POST and its retry; no new attempt (3 is the maximum)
    assert RecoveryAttempt.objects.count() == 1


def test_a_failed_notification_never_stops_the_rest_of_the_run(settings: Any) -> None:
    settings.HOSTED_RECOVERY_EMAIL_RECIPIENTS = []
    nobody = invoice_session(**valid_recovery_url())  # no customer address, no finance list
    somebody = invoice_session(customer_email="buyer@example.invalid", **valid_recovery_url())

    run = _run()

    failed = RecoveryAttempt.objects.get(session=nobody)
    assert failed.notification_status == "failed"
    assert failed.notification_error.startswith("email: no recipient")
    assert RecoveryAttempt.objects.get(session=somebody).notification_status == "sent"
    assert run.counts["recovered"] == 2 and run.counts["notified"] == 1 and run.counts["failed"] == 1
    assert [m.to for m in mail.outbox] == [["buyer@example.invalid"]]


def test_notification_retries_stop_at_the_cap_of_tries(settings: Any, slack_receiver: SlackReceiver) -> None:
    settings.HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES = 2
    invoice_session(recovery_attempts=2, **valid_recovery_url())
    slack_receiver.answers = [500, 502, 503]

    runs = [_run() for _ in range(3)]

    attempt = RecoveryAttempt.objects.get()
    assert (attempt.notification_status, attempt.notification_tries) == ("failed", 2)
    assert attempt.notification_error.endswith("no more retries: 2 tries (HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES)")
    assert len(slack_receiver.bodies) == 2
    assert [r.counts["failed"] for r in runs] == [1, 1, 0]


def test_a_retry_resends_only_the_channel_that_failed(settings: Any, slack_receiver: SlackReceiver) -> None:
    settings.HOSTED_RECOVERY_SLACK_ATTEMPTS = "1"
    invoice_session(**valid_recovery_url())
    slack_receiver.answers = [500]

    _run()
    _run()

    attempt = RecoveryAttempt.objects.get()
    assert attempt.notification_status == "sent" and attempt.notified_channels == ["email", "slack"]
    assert len(mail.outbox) == 1  # not emailed again because Slack failed
    assert len(slack_receiver.bodies) == 2


def test_a_pending_notification_of_an_invoice_paid_since_is_not_sent(slack_receiver: SlackReceiver) -> None:
    session = invoice_session(recovery_attempts=2, **valid_recovery_url())
    slack_receiver.answers = [500]
    _run()
    Invoice.objects.filter(sessions=session).update(status=Invoice.Status.PAID)

    _run()

    attempt = RecoveryAttempt.objects.get()
    assert (attempt.notification_status, attempt.notification_error) == ("skipped", "not sent: the invoice is paid now")
    assert len(slack_receiver.bodies) == 1


def test_an_unreachable_slack_webhook_is_a_failure_that_does_not_reveal_its_path(settings: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.HOSTED_RECOVERY_SLACK_WEBHOOK_URL = f"http://127.0.0.1:{port}/services/T1/B2/very-secret"
    invoice_session(recovery_attempts=2, **valid_recovery_url())

    _run()

    attempt = RecoveryAttempt.objects.get()
    assert attempt.notification_status == "failed"
    assert attempt.notification_error.startswith("slack: ConnectionError")
    assert "very-secret" not in attempt.notification_error


@pytest.mark.django_db(transaction=True)
def test_notifications_are_sent_after_the_attempt_is_committed(
    monkeypatch: pytest.MonkeyPatch, slack_receiver: SlackReceiver
) -> None:
    seen: list[tuple[bool, int]] = []
    real_send = worker._send

    def send(channel: str, notice: Any, config: Any) -> None:
        # Another connection sees the attempt: it is committed, and no transaction is open here.
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM recovery_recoveryattempt")
                seen.append((connection.in_atomic_block, cursor.fetchone()[0]))
        finally:
            other.close()
        real_send(channel, notice, config)

    monkeypatch.setattr(worker, "_send", send)
    invoice_session(recovery_attempts=1, **valid_recovery_url())
    invoice_session(recovery_attempts=2, **valid_recovery_url())

    _run()

    assert seen == [(False, 1), (False, 2)]
    assert len(mail.outbox) == 1 and len(slack_receiver.bodies) == 1


# --- the run, the job, the switch and the command -------------------------------------------------------------


def test_the_run_sweeps_first_and_counts_what_the_sweep_did() -> None:
    now = timezone.now()
    invoice_session(status=Status.OPEN, expires_at=now - timedelta(minutes=1))
    invoice_session(status=Status.EXPIRED, expired_at=now - timedelta(hours=2), **valid_recovery_url())

    run = _run()

    # The one it abandoned is taken up in the same run.
    assert run.counts == {"examined": 1, "expired": 1, "abandoned": 1, "recovered": 1, "notified": 1, "failed": 0}


def test_a_run_that_breaks_is_recorded_failed_and_the_error_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(worker, "sweep_hosted_sessions", broken)

    with pytest.raises(RuntimeError):
        _run()

    run = RecoveryRun.objects.get()
    assert run.status == "failed" and run.finished_at is not None
    assert run.errors == ["the run stopped: RuntimeError: database went away"]


def test_the_beat_task_records_a_scheduled_run_linked_to_its_job_run() -> None:
    entry = scheduled_task("hosted-session-recovery")
    assert (entry.task, entry.every_seconds) == ("recovery.hosted_session_recovery", 300)
    invoice_session(**valid_recovery_url())

    result = hosted_session_recovery.delay().get()

    run = RecoveryRun.objects.get()
    assert (run.trigger, run.status, run.job_run_id) == ("scheduled", "succeeded", result["run_id"])
    assert result["outcome"] == "succeeded"
    assert result["summary"]["recovery_run"] == run.pk and result["summary"]["counts"]["recovered"] == 1
    assert JobRun.objects.get(pk=result["run_id"]).summary["counts"] == run.counts


def test_a_run_left_running_by_a_dead_worker_is_closed_by_the_next_one() -> None:
    dead = RecoveryRun.objects.create(trigger="scheduled")
    hosted_session_recovery.delay()
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.errors == ["abandoned: its worker stopped before it finished"]


def test_switched_off_the_worker_records_that_and_does_nothing(settings: Any) -> None:
    settings.HOSTED_RECOVERY_WORKER_ENABLED = False
    session = invoice_session(status=Status.OPEN, expires_at=timezone.now() - timedelta(hours=1))

    result = hosted_session_recovery.delay().get()

    assert result["summary"] == {"enabled": False}
    assert not RecoveryRun.objects.exists() and not RecoveryAttempt.objects.exists() and mail.outbox == []
    session.refresh_from_db()
    assert session.status == Status.OPEN  # not even swept
    out = StringIO()
    call_command("run_hosted_session_recovery", "--trigger", "manual", stdout=out)
    assert json.loads(out.getvalue().splitlines()[1]) == {"enabled": False}


def test_the_command_runs_one_manual_recovery_through_the_job_and_prints_a_json_summary() -> None:
    invoice_session(**valid_recovery_url())
    out = StringIO()

    call_command("run_hosted_session_recovery", "--trigger", "manual", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0] == "running hosted-session recovery (manual) ..."
    summary = json.loads(lines[1])
    run = RecoveryRun.objects.get()
    assert summary == {
        "enabled": True,
        "recovery_run": run.pk,
        "trigger": "manual",
        "status": "succeeded",
        "counts": {"examined": 1, "expired": 0, "abandoned": 0, "recovered": 1, "notified": 1, "failed": 0},
        "errors": [],
    }
    assert run.job_run is not None and run.job_run.trigger == "manual"
    assert run.job_run.requested_by.startswith("manage.py run_hosted_session_recovery")


def test_the_command_with_the_scheduled_trigger_claims_the_current_tick() -> None:
    out = StringIO()
    call_command("run_hosted_session_recovery", "--trigger", "scheduled", stdout=out)
    assert RecoveryRun.objects.get().trigger == "scheduled"
    # Beat's start of the same tick is then skipped.
    assert hosted_session_recovery.delay().get()["outcome"] == "skipped"


def test_attempts_and_notifications_are_counted_in_prometheus(slack_receiver: SlackReceiver) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    keys = [
        ("billing_recovery_attempts_total", {"method": "stripe_recovery_url"}),
        ("billing_recovery_notifications_total", {"channel": "email", "outcome": "sent"}),
        ("billing_recovery_notifications_total", {"channel": "slack", "outcome": "failed"}),
    ]
    before = [value(name, **labels) for name, labels in keys]
    invoice_session(**valid_recovery_url())
    invoice_session(recovery_attempts=2, **valid_recovery_url())
    slack_receiver.answers = [500]

    _run()

    assert [value(name, **labels) - b for (name, labels), b in zip(keys, before, strict=True)] == [2, 1, 1]


# --- two workers at once ------------------------------------------------------------------------------------


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_take_the_same_session() -> None:
    sessions = [invoice_session(**valid_recovery_url()) for _ in range(30)]
    barrier = threading.Barrier(2)
    runs: list[RecoveryRun] = []
    errors: list[BaseException] = []

    def recover() -> None:
        try:
            barrier.wait(10)
            runs.append(_run())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=recover) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    assert sum(run.counts["recovered"] for run in runs) == 30
    assert sorted(RecoveryAttempt.objects.values_list("session_id", flat=True)) == sorted(s.pk for s in sessions)
    assert set(CheckoutSession.objects.values_list("recovery_attempts", flat=True)) == {1}
    assert len(mail.outbox) == 30
