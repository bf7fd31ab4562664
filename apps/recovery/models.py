"""Recovery runs (one per start of the recovery job) and the attempts they make on abandoned sessions."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.checkout.models import CheckoutSession


def zero_counts() -> dict[str, int]:
    return dict.fromkeys(RecoveryRun.COUNT_NAMES, 0)


class RecoveryRun(models.Model):
    """One recovery run: the sweep, then ways back and notifications for abandoned sessions.

    `counts` (see docs, "Recovery runbook"): examined = abandoned sessions the run took up; expired and
    abandoned = what its sweep changed; recovered = ways back given (attempts recorded); notified =
    notifications delivered (earlier attempts' retries included); failed = ways back that could not
    be given plus notifications that failed in this run. `errors` lists what failed, briefly.
    """

    COUNT_NAMES = ("examined", "expired", "abandoned", "recovered", "notified", "failed")

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled"
        MANUAL = "manual"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=zero_counts)
    errors = models.JSONField(default=list, blank=True)
    # The periodic job's run row this run belongs to (its lock, its retries); null when run directly.
    # SET_NULL: job runs are purged after JOB_RUN_RETENTION_DAYS, recovery runs are kept.
    job_run = models.ForeignKey(
        "common.JobRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="recovery_runs"
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["-started_at"], name="recoveryrun_started")]

    def __str__(self) -> str:
        return f"recovery run #{self.pk} {self.trigger}: {self.status}"


class RecoveryAttempt(models.Model):
    """One way back given to the customer of an abandoned session, and the notification about it.

    `number` is the session's recovery_attempts after the claim (1, 2, ...); a regenerated session
    inherits the count, so numbers run on across an invoice's chain of sessions. The notification is
    sent after the attempt is committed; a failure is recorded here and retried by later runs until
    HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES.
    """

    class Method(models.TextChoices):
        # Stripe's after_expiration.recovery.url, still valid
        STRIPE_RECOVERY_URL = "stripe_recovery_url", "Stripe recovery URL"
        REGENERATED = "regenerated", "regenerated session"  # a new session for the same invoice

    class Channel(models.TextChoices):
        NONE = "", "none"  # the attempt's number is in no enabled channel's list
        EMAIL = "email"
        SLACK = "slack", "Slack"
        EMAIL_AND_SLACK = "email+slack", "email and Slack"

    class NotificationStatus(models.TextChoices):
        PENDING = "pending"  # recorded, not sent yet (or its run stopped before sending)
        SENT = "sent"
        FAILED = "failed"  # retried by later runs until the cap of tries
        SKIPPED = "skipped"  # no channel, or the invoice was settled before the notification went out

    session = models.ForeignKey(CheckoutSession, on_delete=models.PROTECT, related_name="recovery_log")
    run = models.ForeignKey(RecoveryRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    method = models.CharField(max_length=32, choices=Method.choices)
    url = models.TextField()
    new_session = models.ForeignKey(
        CheckoutSession, on_delete=models.PROTECT, null=True, blank=True, related_name="recovery_origin"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    # The channels delivered so far: a retry sends only the others (an email is never sent twice
    # because the Slack message of the same attempt failed).
    notified_channels = models.JSONField(default=list, blank=True)
    notification_status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    notification_error = models.TextField(blank=True)
    notification_tries = models.PositiveSmallIntegerField(default=0)
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["session", "number"], name="recoveryattempt_one_per_number"),
        ]
        indexes = [
            # The retry query: undelivered notifications.
            models.Index(
                fields=["notification_status", "created_at"],
                name="recoveryattempt_undelivered",
                condition=models.Q(notification_status__in=["pending", "failed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} on session #{self.session_id} ({self.method}, {self.notification_status})"

    @property
    def channels(self) -> list[str]:
        return [channel for channel in self.channel.split("+") if channel]
