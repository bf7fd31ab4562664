"""Sessions in each lifecycle state, the recovery settings, and a local Slack incoming-webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from apps.checkout.models import CheckoutSession, Invoice
from tests.factories import CheckoutSessionFactory, InvoiceFactory

OPS = "finance@example.invalid"


def invoice_session(
    *,
    status: str = CheckoutSession.Status.ABANDONED,
    invoice_status: str = Invoice.Status.OPEN,
    invoice: Invoice | None = None,
    total: int = 2610,
    **fields: Any,
) -> CheckoutSession:
    """A hosted session of an invoice (a new 2610 usd one unless given), in `status`, with `fields`."""
    if invoice is None:
        invoice = InvoiceFactory.create(status=invoice_status, total=total, subtotal=total)
    now = timezone.now()
    by_status: dict[str, dict[str, Any]] = {
        CheckoutSession.Status.OPEN: {"expires_at": now + timedelta(hours=12)},
        CheckoutSession.Status.EXPIRED: {
            "expires_at": now - timedelta(hours=2),
            "expired_at": now - timedelta(hours=2),
        },
        CheckoutSession.Status.ABANDONED: {
            "expires_at": now - timedelta(hours=3),
            "expired_at": now - timedelta(hours=3),
            "abandoned_at": now - timedelta(hours=1),
        },
    }
    defaults = by_status.get(status, {})
    session: CheckoutSession = CheckoutSessionFactory.create(
        customer=invoice.customer,
        invoice=invoice,
        mode=CheckoutSession.Mode.PAYMENT,
        stripe_price_id="",
        status=status,
        url="https://checkout.example.invalid/pay/first",
        **{**defaults, **fields},
    )
    return session


def valid_recovery_url(**fields: Any) -> dict[str, Any]:
    """The fields Stripe's checkout.session.expired leaves: a recovery URL valid for 30 days."""
    return {
        "recovery_url": "https://checkout.example.invalid/recover/abc",
        "recovery_url_expires_at": timezone.now() + timedelta(days=30),
        **fields,
    }


# --- Slack ---------------------------------------------------------------------------------------


@dataclass
class SlackReceiver:
    """A Slack incoming webhook on 127.0.0.1: records each POSTed JSON body, answers `answers` in
    order (then 200 "ok")."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    receiver: SlackReceiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.receiver.bodies.append(json.loads(self.rfile.read(length)))
        status = self.receiver.answers.pop(0) if self.receiver.answers else 200
        body = b"ok" if status == 200 else b"internal_error"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    receiver = SlackReceiver(url=f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secretpath")
    server.RequestHandlerClass = type("Handler", (_Handler,), {"receiver": receiver})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def recovery_settings(settings: Any, slack_receiver: SlackReceiver) -> Any:
    """Email for attempts 1 and 2 (to the customer, finance in Bcc), Slack for 3, a day between attempts."""
    settings.HOSTED_SESSION_ABANDON_AFTER_SECONDS = 3600
    settings.HOSTED_RECOVERY_WORKER_ENABLED = True
    settings.HOSTED_RECOVERY_LIMIT = 100
    settings.HOSTED_RECOVERY_MAX_ATTEMPTS = 3
    settings.HOSTED_RECOVERY_RETRY_AFTER_SECONDS = 86400
    settings.HOSTED_RECOVERY_NOTIFICATION_MAX_TRIES = 3
    settings.HOSTED_RECOVERY_EMAIL_ENABLED = True
    settings.HOSTED_RECOVERY_EMAIL_ATTEMPTS = "1,2"
    settings.HOSTED_RECOVERY_EMAIL_RECIPIENTS = [OPS]
    settings.SENDGRID_SENDER_EMAIL = "billing@example.invalid"
    settings.HOSTED_RECOVERY_SLACK_ENABLED = True
    settings.HOSTED_RECOVERY_SLACK_ATTEMPTS = "3"
    settings.HOSTED_RECOVERY_SLACK_WEBHOOK_URL = slack_receiver.url
    settings.HOSTED_RECOVERY_SLACK_CHANNEL = "#billing-alerts"
    settings.HOSTED_RECOVERY_SLACK_TIMEOUT_SECONDS = 5.0
    return settings


def later(days: float) -> datetime:
    return timezone.now() + timedelta(days=days)
