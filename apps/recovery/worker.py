"""The recovery run: sweep, then give abandoned sessions a way back and tell someone about it.

One run (the hosted-session-recovery job, or `manage.py run_hosted_session_recovery`):
1. sweeps (apps.recovery.sweeps): open sessions past expiry -> expired, old expired ones -> abandoned;
2. retries the notifications earlier runs could not deliver (pending or failed, tries left);
3. takes up to HOSTED_RECOVERY_LIMIT abandoned sessions of open invoices with attempts left whose last
   attempt is at least HOSTED_RECOVERY_RETRY_AFTER_SECONDS old, and for each:
   - claims it with a conditional UPDATE (attempts n -> n+1 only if still n), so two workers never
     both take it;
   - gives a way back: Stripe's recovery URL while it is valid, else a regenerated session
     (apps.checkout.hosted.services.hosted_session_regenerate, under the optimistic lock);
   - records a RecoveryAttempt, committed before anything is sent;
   - notifies: email for the attempt numbers in HOSTED_RECOVERY_EMAIL_ATTEMPTS, Slack for those in
     HOSTED_RECOVERY_SLACK_ATTEMPTS (both when listed in both).
A failed notification is recorded on its attempt and never stops the run. No network call is made
inside a transaction: every write here is its own short statement or transaction, committed first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db.models import F
from django.utils import timezone

from apps.checkout.models import CheckoutSession, Invoice
from apps.common.exceptions import Conflict
from apps.common.models import JobRun
from apps.recovery import metrics
from apps.recovery.config import RecoverySettings, recovery_settings
from apps.recovery.models import RecoveryAttempt, RecoveryRun
from apps.recovery.notify import NotificationError, RecoveryNotice, email_send, slack_send
from apps.recovery.selectors import Candidate, recovery_candidates, undelivered_attempts
from apps.recovery.sweeps import sweep_hosted_sessions

log = structlog.get_logger("billing.recovery")

JOB = "hosted-session-recovery"
ACTOR = "recovery"
# A recovery URL about to expire is no way back: the customer reads the email later. Stripe's last
# for 30 days, so this only matters at the end of that window.
RECOVERY_URL_MIN_REMAINING = timedelta(hours=1)
MAX_ERRORS = 50
ERROR_LENGTH = 300

Status = CheckoutSession.Status
Notification = RecoveryAttempt.NotificationStatus


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RecoveryRun.COUNT_NAMES, 0))
    errors: list[str] = field(default_factory=list)
    more_errors: int = 0

    def fail(self, error: str) -> None:
        self.counts["failed"] += 1
        self.note(error)

    def note(self, error: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error if len(error) <= ERROR_LENGTH else error[: ERROR_LENGTH - 1] + "…")
        else:
            self.more_errors += 1

    def error_list(self) -> list[str]:
        more = [f"... and {self.more_errors} more (see the run's attempts)"] if self.more_errors else []
        return [*self.errors, *more]


def recovery_job_body() -> dict[str, Any]:
    """The hosted-session-recovery job's body: one run, or nothing when the worker is switched off."""
    if not recovery_settings().worker_enabled:
        log.info("hosted_session_recovery_disabled")
        return {"enabled": False}
    # job_execute has just failed any run a dead worker left `running` and created ours, under the
    # job's lock: the one running row of this job is this start's.
    job_run = JobRun.objects.filter(job=JOB, outcome=JobRun.Outcome.RUNNING).order_by("-started_at", "-id").first()
    manual = job_run is not None and job_run.trigger == JobRun.Trigger.MANUAL
    run = recovery_run_execute(
        trigger=RecoveryRun.Trigger.MANUAL if manual else RecoveryRun.Trigger.SCHEDULED, job_run=job_run
    )
    return run_summary(run)


def run_summary(run: RecoveryRun) -> dict[str, Any]:
    return {
        "enabled": True,
        "recovery_run": run.pk,
        "trigger": run.trigger,
        "status": run.status,
        "counts": run.counts,
        "errors": run.errors,
    }


def recovery_run_execute(*, trigger: str, job_run: JobRun | None = None) -> RecoveryRun:
    """One recovery run, recorded as a RecoveryRun; raises (after recording it failed) on an
    unexpected error, so that the job's policy retries it. Meant to run under the job's lock."""
    config = recovery_settings()
    now = timezone.now()
    if job_run is not None:
        _close_dead_runs(now)
    run = RecoveryRun.objects.create(trigger=trigger, started_at=now, job_run=job_run)
    log.info("recovery_run_started", run_id=run.pk, trigger=trigger)
    tally = _Tally()
    try:
        swept = sweep_hosted_sessions(now=now)
        tally.counts["expired"] = swept["expired"]
        tally.counts["abandoned"] = swept["abandoned"]
        for attempt in undelivered_attempts(before_run=run, max_tries=config.notification_max_tries):
            _deliver(attempt, config, tally)
        candidates = recovery_candidates(
            now=now,
            max_attempts=config.max_attempts,
            retry_after_seconds=config.retry_after_seconds,
            limit=config.limit,
        )
        for candidate in candidates:
            tally.counts["examined"] += 1
            given = _way_back_give(candidate, run, config, tally)
            if given is not None:
                _deliver(given, config, tally)
    except Exception as exc:
        tally.note(f"the run stopped: {type(exc).__name__}: {exc}")
        _finish(run, RecoveryRun.Status.FAILED, tally)
        raise
    _finish(run, RecoveryRun.Status.SUCCEEDED, tally)
    return run


def _close_dead_runs(now: datetime) -> None:
    # We hold the job's lock: a run still `running` belongs to a worker that died.
    RecoveryRun.objects.filter(status=RecoveryRun.Status.RUNNING).update(
        status=RecoveryRun.Status.FAILED, finished_at=now, errors=["abandoned: its worker stopped before it finished"]
    )


def _finish(run: RecoveryRun, status: str, tally: _Tally) -> None:
    run.status = status
    run.finished_at = timezone.now()
    run.counts = tally.counts
    run.errors = tally.error_list()
    run.save(update_fields=["status", "finished_at", "counts", "errors"])
    log.info("recovery_run_finished", run_id=run.pk, status=status, **tally.counts)


# --- the way back -------------------------------------------------------------------------------


def _claim(candidate: Candidate, at: datetime) -> bool:
    """attempts n -> n+1 only if the row still reads n, is abandoned and its invoice open."""
    open_invoices = Invoice.objects.filter(status=Invoice.Status.OPEN).values("pk")
    claimed = CheckoutSession.objects.filter(
        pk=candidate.session_id,
        status=Status.ABANDONED,
        recovery_attempts=candidate.attempts,
        invoice_id__in=open_invoices,
    ).update(recovery_attempts=candidate.attempts + 1, last_recovery_at=at, updated_at=at)
    return claimed == 1


def _unclaim(session_id: int, number: int) -> None:
    """No way back was given: the attempt is not spent (last_recovery_at stays, so it waits a spacing)."""
    CheckoutSession.objects.filter(pk=session_id, recovery_attempts=number).update(
        recovery_attempts=number - 1, updated_at=timezone.now()
    )


def recovery_url_usable(session: CheckoutSession, at: datetime) -> bool:
    """Stripe's recovery URL, while it has at least RECOVERY_URL_MIN_REMAINING left (no expiry known: usable)."""
    if not session.recovery_url:
        return False
    expires = session.recovery_url_expires_at
    return expires is None or expires > at + RECOVERY_URL_MIN_REMAINING


def _regenerate(*, session_id: int, expected_updated_at: datetime) -> CheckoutSession:
    # Imported here: the hosted-session services import the Stripe gateway, which the sweep never needs.
    from apps.checkout.hosted.services import hosted_session_regenerate

    return hosted_session_regenerate(session_id=session_id, expected_updated_at=expected_updated_at, actor=ACTOR)


def _way_back_give(
    candidate: Candidate, run: RecoveryRun, config: RecoverySettings, tally: _Tally
) -> RecoveryAttempt | None:
    claimed_at = timezone.now()
    if not _claim(candidate, claimed_at):
        log.info("recovery_claim_lost", session_id=candidate.session_id)
        return None
    number = candidate.attempts + 1
    session = CheckoutSession.objects.get(pk=candidate.session_id)
    new_session: CheckoutSession | None = None
    if recovery_url_usable(session, claimed_at):
        method, url = RecoveryAttempt.Method.STRIPE_RECOVERY_URL, session.recovery_url
    else:
        method = RecoveryAttempt.Method.REGENERATED
        try:
            # The claim wrote updated_at = claimed_at: that is the token as we last wrote it, so an
            # operator's regenerate since then makes this one a 409 rather than a second new session.
            new_session = _regenerate(session_id=session.pk, expected_updated_at=claimed_at)
        except Conflict as exc:
            _unclaim(session.pk, number)
            log.info("recovery_regenerate_conflict", session_id=session.pk, reason=str(exc))
            tally.note(f"session #{session.pk}: changed before it could be regenerated ({exc})")
            return None
        except Exception as exc:  # the Stripe gateway's errors among others: recorded, the run goes on
            _unclaim(session.pk, number)
            log.warning("recovery_regenerate_failed", session_id=session.pk, error=str(exc))
            tally.fail(f"session #{session.pk}: regeneration failed: {type(exc).__name__}: {exc}")
            return None
        if not new_session.url:
            tally.fail(f"session #{session.pk}: regenerated as session #{new_session.pk} without a URL")
            return None
        url = new_session.url
        # The new session carries the count on: the maximum bounds the invoice's chain of sessions,
        # not each session of it.
        CheckoutSession.objects.filter(pk=new_session.pk).update(
            recovery_attempts=number, last_recovery_at=claimed_at, updated_at=timezone.now()
        )
    channels = config.channels_for(number)
    attempt = RecoveryAttempt.objects.create(
        session=session,
        run=run,
        number=number,
        method=method,
        url=url,
        new_session=new_session,
        channel="+".join(channels),
        notification_status=Notification.PENDING if channels else Notification.SKIPPED,
        notification_error="" if channels else f"attempt {number} is in no enabled channel's list",
    )
    metrics.ATTEMPTS.labels(method=method).inc()
    tally.counts["recovered"] += 1
    log.info("recovery_attempt_recorded", session_id=session.pk, attempt=number, method=method, channels=channels)
    return attempt


# --- notifications ------------------------------------------------------------------------------


def _customer_email(session: CheckoutSession) -> str:
    """The address Stripe collected on this session, else on another session of the same invoice."""
    if session.customer_email or session.invoice_id is None:
        return session.customer_email
    known = (
        CheckoutSession.objects.filter(invoice_id=session.invoice_id)
        .exclude(customer_email="")
        .order_by("-created_at")
        .values_list("customer_email", flat=True)
        .first()
    )
    return known or ""


def _notice(attempt: RecoveryAttempt, invoice: Invoice, config: RecoverySettings) -> RecoveryNotice:
    session = attempt.session
    return RecoveryNotice(
        invoice_id=invoice.pk,
        total=invoice.total,
        currency=invoice.currency,
        user_id=invoice.user_id,
        project=session.project.slug,
        customer_email=_customer_email(session),
        url=attempt.url,
        attempt=attempt.number,
        max_attempts=config.max_attempts,
        method=attempt.method,
    )


def _send(channel: str, notice: RecoveryNotice, config: RecoverySettings) -> None:
    if channel == RecoveryAttempt.Channel.EMAIL:
        if not config.email_enabled:
            raise NotificationError("email is switched off (HOSTED_RECOVERY_EMAIL_ENABLED)")
        email_send(notice, config)
    elif channel == RecoveryAttempt.Channel.SLACK:
        if not config.slack_enabled:
            raise NotificationError("Slack is switched off (HOSTED_RECOVERY_SLACK_ENABLED)")
        slack_send(notice, config)
    else:
        raise NotificationError(f"unknown channel {channel!r}")


def _deliver(attempt: RecoveryAttempt, config: RecoverySettings, tally: _Tally) -> None:
    """Sends the attempt's channels not delivered yet and records the outcome on the attempt."""
    undelivered = [Notification.PENDING, Notification.FAILED]
    invoice = attempt.session.invoice
    if invoice is None or invoice.status != Invoice.Status.OPEN:
        # Paid (or voided) since the attempt: a reminder to pay would now be wrong.
        status = invoice.status if invoice is not None else "gone"
        RecoveryAttempt.objects.filter(pk=attempt.pk, notification_status__in=undelivered).update(
            notification_status=Notification.SKIPPED,
            notification_error=f"not sent: the invoice is {status} now",
            updated_at=timezone.now(),
        )
        return
    tries = attempt.notification_tries
    # Counted before sending, by a conditional UPDATE: two runs never send the same try, and a worker
    # killed mid-send has spent the try.
    # updated_at pinned too: a worker that read the attempt before another one took it loses.
    taken = RecoveryAttempt.objects.filter(
        pk=attempt.pk, notification_tries=tries, notification_status__in=undelivered, updated_at=attempt.updated_at
    ).update(notification_tries=F("notification_tries") + 1, updated_at=timezone.now())
    if not taken:
        return
    notice = _notice(attempt, invoice, config)
    delivered = list(attempt.notified_channels)
    errors: list[str] = []
    for channel in attempt.channels:
        if channel in delivered:
            continue
        try:
            _send(channel, notice, config)
        except NotificationError as exc:
            errors.append(f"{channel}: {exc}")
            metrics.NOTIFICATIONS.labels(channel=channel, outcome="failed").inc()
            tally.fail(f"attempt #{attempt.pk} (session #{attempt.session_id}) {channel}: {exc}")
            log.warning("recovery_notification_failed", attempt_id=attempt.pk, channel=channel, error=str(exc))
        else:
            delivered.append(channel)
            # Recorded at once: should the run stop before the loop ends (a time limit, a database
            # error), a later retry must not send this channel's message a second time.
            RecoveryAttempt.objects.filter(pk=attempt.pk).update(notified_channels=list(delivered))
            metrics.NOTIFICATIONS.labels(channel=channel, outcome="sent").inc()
            tally.counts["notified"] += 1
            log.info("recovery_notification_sent", attempt_id=attempt.pk, channel=channel)
    now = timezone.now()
    if errors and tries + 1 >= config.notification_max_tries:
        errors.append(f"no more retries: {tries + 1} tries (HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES)")
    RecoveryAttempt.objects.filter(pk=attempt.pk).update(
        notified_channels=delivered,
        notification_status=Notification.FAILED if errors else Notification.SENT,
        notification_error="; ".join(errors),
        notified_at=now if len(delivered) > len(attempt.notified_channels) else attempt.notified_at,
        updated_at=now,
    )
