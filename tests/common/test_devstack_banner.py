"""What `make run`'s banner says about webhooks: where the signing secret is, how to send an event."""

from __future__ import annotations

from pathlib import Path

from devtools.management.commands.devstack import Command


def test_with_the_sandbox_it_names_the_secret_file_and_the_trigger_command() -> None:
    secret_file = Path.cwd() / "var" / "sandbox" / "webhook-secret"
    lines = Command()._webhook_help("http://127.0.0.1:18080", secret_file)
    text = "\n".join(lines)
    assert "http://127.0.0.1:18080/api/v1/webhooks/stripe, signing secret in var/sandbox/webhook-secret" in text
    assert "STRIPE_WEBHOOK_SECRETS" in text
    assert "manage.py stripe_trigger --print-secret" in text
    assert "manage.py stripe_trigger <event type>" in text


def test_with_real_stripe_it_names_the_settings_that_hold_the_secret() -> None:
    text = "\n".join(Command()._webhook_help("http://127.0.0.1:8000", None))
    assert "verified with your STRIPE_WEBHOOK_SECRETS / STRIPE_WEBHOOK_SECRET" in text
    assert "stripe_trigger" not in text  # it drives the sandbox only
