"""`manage.py stripe_trigger`: each supported event arrives, signed, at the registered endpoint."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.checkout.trigger import ACTIONS
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant
from tests.sandbox.conftest import Receiver, wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


@pytest.fixture
def receiver(stripe_client: stripe.StripeClient) -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    endpoint = stripe_client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"]})
    yield receiver, str(endpoint.secret)
    receiver.close()


def _of_type(server: Receiver, event_type: str) -> list[dict[str, Any]]:
    return [r for r in server.requests if f'"type": "{event_type}"' in r["body"]]


def _trigger(*args: str) -> str:
    out = io.StringIO()
    call_command("stripe_trigger", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize("event_type", sorted(ACTIONS))
def test_the_event_is_delivered_signed_to_the_endpoint(
    event_type: str, alice: Tenant, catalog: dict[str, str], receiver: tuple[Receiver, str]
) -> None:
    server, secret = receiver
    out = _trigger(event_type, "--project", alice.project.slug, "--user", "u-trigger")
    assert f"Triggered {event_type}." in out
    named = re.findall(rf"event (evt_\w+) {re.escape(event_type)} ", out)  # the command names its events
    assert named
    delivered = wait_for(lambda: len(_of_type(server, event_type)) >= len(named) and _of_type(server, event_type))
    events = [stripe.Webhook.construct_event(r["body"], r["headers"]["Stripe-Signature"], secret) for r in delivered]
    assert {event.type for event in events} == {event_type}
    assert sorted(event.id for event in events) == sorted(named)
    if event_type == "customer.subscription.updated":
        assert "past_due" in [event.data.object["status"] for event in events]


def test_a_payment_checkout_is_triggered_with_mode_payment(
    alice: Tenant, catalog: dict[str, str], receiver: tuple[Receiver, str], stripe_client: stripe.StripeClient
) -> None:
    out = _trigger("checkout.session.completed", "--mode", "payment", "--project", alice.project.slug)
    assert "(payment, " in out
    sessions = stripe_client.v1.checkout.sessions.list().data
    assert [(s.mode, s.status) for s in sessions] == [("payment", "complete")]


def test_an_unsupported_event_type_lists_the_supported_ones(alice: Tenant, stripe_sandbox: SandboxProcess) -> None:
    with pytest.raises(CommandError) as info:
        _trigger("customer.discount.created", "--project", alice.project.slug)
    assert "unsupported event type 'customer.discount.created'" in str(info.value)
    assert all(name in str(info.value) for name in ACTIONS)


def test_a_sandbox_that_is_not_running_is_a_clear_error(alice: Tenant, settings: object) -> None:
    settings.STRIPE_API_HOST = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match=r"The Stripe sandbox is not running at http://127\.0\.0\.1:9"):
        _trigger("charge.refunded", "--project", alice.project.slug)


def test_print_secret_prints_the_secret_make_run_wrote(settings: object, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path  # type: ignore[attr-defined]
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "webhook-secret").write_text("whsec_abc\n")
    assert _trigger("--print-secret").strip() == "whsec_abc"


def test_from_a_second_terminal_beside_make_run_it_finds_the_sandbox_by_its_port(
    alice: Tenant, catalog: dict[str, str], receiver: tuple[Receiver, str], settings: Any, monkeypatch: Any
) -> None:
    # A plain shell next to `make run` has neither STRIPE_API_HOST nor STRIPE_SECRET_KEY: only the
    # sandbox's port (the default, or STRIPE_SANDBOX_PORT). The checkout it creates must reach it.
    sandbox_port = settings.STRIPE_API_HOST.rsplit(":", 1)[1]
    settings.STRIPE_API_HOST = None
    settings.STRIPE_SECRET_KEY = ""
    monkeypatch.setenv("STRIPE_SANDBOX_PORT", sandbox_port)
    out = _trigger("checkout.session.completed", "--project", alice.project.slug)
    assert "Triggered checkout.session.completed." in out
