"""Recovery notifications: an email (Django's mail API: SendGrid through django-anymail in production,
the console under `make run`, the locmem outbox in tests) and a Slack incoming-webhook message.

Both are network calls: callers send only after the attempt they announce is committed, never inside
a transaction. A failure raises NotificationError with a short, secret-free reason for the attempt row.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import requests
from django.core.mail import EmailMessage

from apps.recovery.config import RecoverySettings

# Stripe's zero- and three-decimal currencies; every other currency has two decimals.
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
ERROR_LENGTH = 300


class NotificationError(Exception):
    """A notification was not delivered; the message says why (no secrets in it)."""


@dataclass(frozen=True)
class RecoveryNotice:
    """What a notification says: the invoice, its customer and the way back."""

    invoice_id: int
    total: int  # minor units
    currency: str
    user_id: str
    project: str
    customer_email: str
    url: str
    attempt: int
    max_attempts: int
    method: str

    @property
    def amount(self) -> str:
        """The total in major units, for people: 2610 usd -> 26.10 USD; 500 jpy -> 500 JPY."""
        currency = self.currency.lower()
        digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
        if digits == 0:
            return f"{self.total} {currency.upper()}"
        major, minor = divmod(self.total, 10**digits)
        return f"{major}.{minor:0{digits}d} {currency.upper()}"


def _short(text: str) -> str:
    return text if len(text) <= ERROR_LENGTH else text[: ERROR_LENGTH - 1] + "…"


def email_send(notice: RecoveryNotice, config: RecoverySettings) -> None:
    """One email to the customer (when Stripe gave us an address) with the operators in Bcc, or to the
    operators alone: HOSTED_RECOVERY_EMAIL_RECIPIENTS are never shown to the customer."""
    operators = list(config.email_recipients)
    to = [notice.customer_email] if notice.customer_email else operators
    bcc = operators if notice.customer_email else []
    if not to:
        raise NotificationError("no recipient: no customer email and HOSTED_RECOVERY_EMAIL_RECIPIENTS is empty")
    subject = f"Complete your payment: invoice #{notice.invoice_id} ({notice.amount})"
    body = (
        f"Invoice #{notice.invoice_id} for {notice.amount} is still unpaid: its checkout page expired "
        f"before the payment was made.\n\n"
        f"Pay it here: {notice.url}\n\n"
        f"Invoice: #{notice.invoice_id}\n"
        f"Total: {notice.amount} ({notice.total} in minor units of {notice.currency.upper()})\n"
        f"User: {notice.user_id} (project {notice.project})\n"
        f"Reminder {notice.attempt} of at most {notice.max_attempts}.\n"
    )
    message = EmailMessage(subject=subject, body=body, from_email=config.sender_email or None, to=to, bcc=bcc)
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # SMTP, anymail's API errors, sockets: all recorded on the attempt
        raise NotificationError(_short(f"{type(exc).__name__}: {exc}")) from exc


def _without_secret(text: str, webhook: str) -> str:
    """The webhook URL's path is its credential: urllib3's errors quote it, the row must not."""
    path = urlparse(webhook).path
    text = text.replace(webhook, "<webhook>")
    return text.replace(path, "/<path>") if len(path) > 1 else text


def slack_text(notice: RecoveryNotice) -> str:
    return (
        f":warning: Invoice #{notice.invoice_id} ({notice.amount}) of user {notice.user_id} in project "
        f"{notice.project} is still unpaid after recovery attempt {notice.attempt} of {notice.max_attempts} "
        f"({notice.method.replace('_', ' ')}). Way back: {notice.url}"
    )


def slack_send(notice: RecoveryNotice, config: RecoverySettings) -> None:
    """POSTs the message to the incoming webhook; anything but a 2xx answer is a failure."""
    webhook = config.slack_webhook_url
    if not webhook:
        raise NotificationError("HOSTED_RECOVERY_SLACK_WEBHOOK_URL is not set")
    payload: dict[str, str] = {"text": slack_text(notice)}
    if config.slack_channel:
        payload["channel"] = config.slack_channel
    try:
        response = requests.post(webhook, json=payload, timeout=config.slack_timeout_seconds)
    except requests.RequestException as exc:
        raise NotificationError(_short(f"{type(exc).__name__}: {_without_secret(str(exc), webhook)}")) from exc
    if not 200 <= response.status_code < 300:
        raise NotificationError(_short(f"Slack answered HTTP {response.status_code}: {response.text.strip()}"))
