"""The recovery settings, read in one place.

Each is read from django.conf.settings at call time (so a test's `settings` fixture applies), with
the default the README documents when settings.py does not define it. billing_service/settings.py
reads the environment (billing_service/env.py); this module only checks the values make sense.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "HOSTED_SESSION_ABANDON_AFTER_SECONDS": 3600,
    "HOSTED_RECOVERY_WORKER_ENABLED": True,
    "HOSTED_RECOVERY_INTERVAL_SECONDS": 300,
    "HOSTED_RECOVERY_LIMIT": 100,
    "HOSTED_RECOVERY_MAX_ATTEMPTS": 3,
    "HOSTED_RECOVERY_RETRY_AFTER_SECONDS": 86400,
    "HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES": 5,
    "HOSTED_RECOVERY_EMAIL_ENABLED": True,
    "HOSTED_RECOVERY_EMAIL_ATTEMPTS": "1,2",
    "HOSTED_RECOVERY_EMAIL_RECIPIENTS": "",
    "SENDGRID_SENDER_EMAIL": "",
    "HOSTED_RECOVERY_SLACK_ENABLED": False,
    "HOSTED_RECOVERY_SLACK_ATTEMPTS": "3",
    "HOSTED_RECOVERY_SLACK_WEBHOOK_URL": "",
    "HOSTED_RECOVERY_SLACK_CHANNEL": "",
    "HOSTED_RECOVERY_SLACK_TIMEOUT_SECONDS": 5.0,
}


@dataclass(frozen=True)
class RecoverySettings:
    abandon_after_seconds: int
    worker_enabled: bool
    interval_seconds: int
    limit: int
    max_attempts: int
    retry_after_seconds: int
    notification_max_tries: int
    email_enabled: bool
    email_attempts: frozenset[int]
    email_recipients: tuple[str, ...]
    sender_email: str
    slack_enabled: bool
    slack_attempts: frozenset[int]
    slack_webhook_url: str
    slack_channel: str
    slack_timeout_seconds: float

    def channels_for(self, attempt: int) -> list[str]:
        """The channels attempt number `attempt` notifies, in sending order (email, then Slack).

        A number listed in both HOSTED_RECOVERY_EMAIL_ATTEMPTS and HOSTED_RECOVERY_SLACK_ATTEMPTS
        uses both; a disabled channel is left out; a number in neither list notifies nobody.
        """
        channels = []
        if self.email_enabled and attempt in self.email_attempts:
            channels.append("email")
        if self.slack_enabled and attempt in self.slack_attempts:
            channels.append("slack")
        return channels


def _value(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


def _int(name: str, *, minimum: int) -> int:
    value = _value(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be an integer of at least {minimum}")
    return int(value)


def _bool(name: str) -> bool:
    value = _value(name)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{name}={value!r} must be a boolean")
    return value


def _items(name: str) -> list[str]:
    """A comma-separated string (as in the environment) or a list (as env_list gives it)."""
    value = _value(name)
    raw: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    return [str(item).strip() for item in raw if str(item).strip()]


def _attempt_numbers(name: str) -> frozenset[int]:
    numbers = set()
    for item in _items(name):
        if not item.isdigit() or int(item) < 1:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an attempt number (1, 2, ...)")
        numbers.add(int(item))
    return frozenset(numbers)


def recovery_settings() -> RecoverySettings:
    timeout = _value("HOSTED_RECOVERY_SLACK_TIMEOUT_SECONDS")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ImproperlyConfigured(f"HOSTED_RECOVERY_SLACK_TIMEOUT_SECONDS={timeout!r} must be a positive number")
    return RecoverySettings(
        abandon_after_seconds=_int("HOSTED_SESSION_ABANDON_AFTER_SECONDS", minimum=0),
        worker_enabled=_bool("HOSTED_RECOVERY_WORKER_ENABLED"),
        interval_seconds=_int("HOSTED_RECOVERY_INTERVAL_SECONDS", minimum=60),
        limit=_int("HOSTED_RECOVERY_LIMIT", minimum=1),
        max_attempts=_int("HOSTED_RECOVERY_MAX_ATTEMPTS", minimum=0),
        retry_after_seconds=_int("HOSTED_RECOVERY_RETRY_AFTER_SECONDS", minimum=0),
        notification_max_tries=_int("HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES", minimum=1),
        email_enabled=_bool("HOSTED_RECOVERY_EMAIL_ENABLED"),
        email_attempts=_attempt_numbers("HOSTED_RECOVERY_EMAIL_ATTEMPTS"),
        email_recipients=tuple(_items("HOSTED_RECOVERY_EMAIL_RECIPIENTS")),
        sender_email=str(_value("SENDGRID_SENDER_EMAIL") or getattr(settings, "DEFAULT_FROM_EMAIL", "")),
        slack_enabled=_bool("HOSTED_RECOVERY_SLACK_ENABLED"),
        slack_attempts=_attempt_numbers("HOSTED_RECOVERY_SLACK_ATTEMPTS"),
        slack_webhook_url=str(_value("HOSTED_RECOVERY_SLACK_WEBHOOK_URL") or ""),
        slack_channel=str(_value("HOSTED_RECOVERY_SLACK_CHANNEL") or ""),
        slack_timeout_seconds=float(timeout),
    )
