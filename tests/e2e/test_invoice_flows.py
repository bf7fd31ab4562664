"""Invoices paid on Stripe's hosted page, end to end: our API, the sandbox's hosted pages and clock,
its signed webhooks into a live server, the sweep, and the recovery run with its email and Slack.

Time: the sandbox's clock makes a session expire (and signs its webhooks with that clock), so ours
travels with it (time_machine; the live server runs in this process, so it travels too). The
recovery run is the job's own entry point, `manage.py run_hosted_session_recovery --trigger
manual`, run here rather than by a separate worker process: a worker could not travel in time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
import requests
import time_machine
from django.core import mail
from django.core.management import call_command

from apps.checkout.models import CheckoutSession, Invoice
from apps.entitlements.models import Purchase
from apps.recovery.models import RecoveryAttempt
from apps.recovery.sweeps import sweep_hosted_sessions
from stripe_sandbox.testing import SandboxProcess
from tests.e2e.conftest import Stack, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]

CARD = "4242424242424242"
SUCCESS_URL = "https://alpha.example/paid"
CANCEL_URL = "https://alpha.example/invoice"
OPS = "finance@example.invalid"
# Short enough to travel over, long enough that a slow machine's real seconds never cross them.
ABANDON_AFTER = 600
RETRY_AFTER = 3600
MAX_ATTEMPTS = 2


# --- clocks -------------------------------------------------------------------------------------


def _instant(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)


class Clocks:
    """Stripe's clock (the sandbox's) and ours. Both tick in real time from where they were moved."""

    def __init__(self, sandbox: SandboxProcess, traveller: time_machine.Traveller) -> None:
        self.sandbox = sandbox
        self.traveller = traveller

    def ours_to(self, timestamp: int) -> None:
        # Webhooks still on their way were signed by Stripe's clock: they land before ours moves.
        eventually(lambda: not self.sandbox.deliveries(status="pending"), what="the sandbox's deliveries settled")
        self.traveller.move_to(_instant(timestamp))

    def webhooks_refused(self) -> list[tuple[str, int | None]]:
        """Every delivery attempt our endpoint did not answer 200: none while the clocks are in step."""
        return [
            (delivery["event_type"], attempt["status"])
            for delivery in self.sandbox.deliveries()
            for attempt in delivery["attempts"]
            if attempt["status"] != 200
        ]

    def stripe_follows(self) -> None:
        """Stripe's clock catches up with ours, running what falls due on the way (expiries, with their events)."""
        self.sandbox.advance_clock(to=int(dt.datetime.now(tz=dt.UTC).timestamp()))

    def advance(self, seconds: int) -> None:
        """Both clocks, `seconds` on from Stripe's now."""
        self.sandbox.advance_clock(seconds)
        self.ours_to(self.sandbox.now())


@pytest.fixture
def clocks(stack: Stack) -> Iterator[Clocks]:
    # The sandbox signs its webhooks with its own clock, which our signature check compares with ours.
    stack.sandbox.configure(sign_with_sandbox_clock=True)
    with time_machine.travel(_instant(stack.sandbox.now()), tick=True) as traveller:
        yield Clocks(stack.sandbox, traveller)


# --- a Slack incoming webhook on 127.0.0.1 ------------------------------------------------------


@dataclass
class SlackReceiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            receiver.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/e2e"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def recovery(settings: Any, slack: SlackReceiver) -> Any:
    """Attempt 1 emails finance, attempt 2 goes to Slack; at most two attempts, an hour apart."""
    settings.HOSTED_SESSION_ABANDON_AFTER_SECONDS = ABANDON_AFTER
    settings.HOSTED_RECOVERY_WORKER_ENABLED = True
    settings.HOSTED_RECOVERY_MAX_ATTEMPTS = MAX_ATTEMPTS
    settings.HOSTED_RECOVERY_RETRY_AFTER_SECONDS = RETRY_AFTER
    settings.HOSTED_RECOVERY_EMAIL_ENABLED = True
    settings.HOSTED_RECOVERY_EMAIL_ATTEMPTS = ["1"]
    settings.HOSTED_RECOVERY_EMAIL_RECIPIENTS = [OPS]
    settings.SENDGRID_SENDER_EMAIL = "billing@example.invalid"
    settings.HOSTED_RECOVERY_SLACK_ENABLED = True
    settings.HOSTED_RECOVERY_SLACK_ATTEMPTS = ["2"]
    settings.HOSTED_RECOVERY_SLACK_WEBHOOK_URL = slack.url
    settings.HOSTED_RECOVERY_SLACK_CHANNEL = "#billing"
    return settings


# --- our API ------------------------------------------------------------------------------------


def _created(stack: Stack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.tenant.client().post(path, body, format="json")
    assert response.status_code == 201, response.json()
    return dict(response.json())


def _get(stack: Stack, path: str) -> dict[str, Any]:
    response = stack.tenant.client().get(path)
    assert response.status_code == 200, response.json()
    return dict(response.json())


def _plain_product(stack: Stack) -> dict[str, Any]:
    body = {"slug": "annual-report", "name": "Annual report", "unit_amount": 2500, "currency": "usd"}
    return _created(stack, "/api/v1/products", body)


def _invoice(stack: Stack, user_id: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    body = {"user_id": user_id, "project_id": stack.tenant.project.pk, "currency": "usd", "lines": lines}
    return _created(stack, "/api/v1/billing/invoices", body)


def _hosted_session(stack: Stack, invoice_id: int) -> dict[str, Any]:
    body = {"success_url": SUCCESS_URL, "cancel_url": CANCEL_URL}
    session = _created(stack, f"/api/v1/billing/invoices/{invoice_id}/checkout", body)
    assert session["status"] == "open" and session["checkout_url"], session
    return session


def _invoice_status(stack: Stack, invoice_id: int) -> str:
    return str(_get(stack, f"/api/v1/billing/invoices/{invoice_id}")["status"])


# --- the customer's browser ---------------------------------------------------------------------


def _pay(page_url: str, **form: str) -> None:
    paid = requests.post(f"{page_url}/pay", data={"card_number": CARD, **form}, allow_redirects=False, timeout=10)
    assert paid.status_code == 303, paid.text[:300]
    assert paid.headers["Location"] == SUCCESS_URL


def _follow(link: str) -> str:
    """Opens a link from a reminder like a browser: the hosted page it leads to (after its redirect)."""
    first = requests.get(link, allow_redirects=False, timeout=10)
    assert first.status_code in (200, 302), first.text[:300]
    page = first.headers["Location"] if first.status_code == 302 else link
    shown = requests.get(page, timeout=10)
    assert shown.status_code == 200 and "card_number" in shown.text, shown.text[:300]
    return page


# --- recovery -----------------------------------------------------------------------------------


def _recovery_run() -> dict[str, int]:
    """One run through the operator's command (the job's lock and history); the run's counts."""
    out = StringIO()
    call_command("run_hosted_session_recovery", "--trigger", "manual", stdout=out)
    summary = json.loads(next(line for line in out.getvalue().splitlines() if line.startswith("{")))
    assert summary["status"] == "succeeded" and summary["errors"] == [], summary
    return dict(summary["counts"])


def _expire_and_abandon(stack: Stack, clocks: Clocks, session: dict[str, Any]) -> CheckoutSession:
    """The session expires by the clocks: our sweep marks it expired, Stripe's event then brings its
    recovery URL, and a sweep HOSTED_SESSION_ABANDON_AFTER_SECONDS later marks it abandoned."""
    at_stripe = stack.stripe.v1.checkout.sessions.retrieve(session["stripe_session_id"])
    assert at_stripe.expires_at is not None
    assert dt.datetime.fromisoformat(session["expires_at"]) == _instant(at_stripe.expires_at)
    # Our clock passes expires_at first, so that it is the sweep, not Stripe's event, that finds it.
    clocks.ours_to(at_stripe.expires_at + 1)
    assert sweep_hosted_sessions() == {"expired": 1, "abandoned": 0, "dry_run": False}
    clocks.stripe_follows()
    row: CheckoutSession = eventually(
        lambda: CheckoutSession.objects.exclude(recovery_url="").filter(pk=session["id"]).first(),
        timeout=30,
        what="the recovery URL of checkout.session.expired",
    )
    expired = stack.stripe.v1.checkout.sessions.retrieve(str(row.stripe_session_id)).to_dict()
    recovery = expired["after_expiration"]["recovery"]
    assert (expired["status"], expired["url"]) == ("expired", None)
    assert (row.status, row.recovery_url, row.recovery_url_expires_at) == (
        "expired",
        recovery["url"],
        _instant(recovery["expires_at"]),
    )
    assert sweep_hosted_sessions() == {"expired": 0, "abandoned": 0, "dry_run": False}  # not for long enough yet
    clocks.advance(ABANDON_AFTER + 60)
    assert sweep_hosted_sessions() == {"expired": 0, "abandoned": 1, "dry_run": False}
    row.refresh_from_db()
    assert row.status == "abandoned" and row.recovery_attempts == 0
    return row


_NOTHING_DONE = {"examined": 0, "recovered": 0, "notified": 0, "failed": 0}


def _only(counts: dict[str, int], names: tuple[str, ...] = tuple(_NOTHING_DONE)) -> dict[str, int]:
    return {name: counts[name] for name in names}


# --- the tests ----------------------------------------------------------------------------------


def test_an_invoice_of_a_configured_product_is_paid_on_the_hosted_page_and_its_feature_becomes_active(
    stack: Stack,
) -> None:
    configuration = {
        "option_groups": [
            {
                "name": "Size",
                "selection": "single",
                "required": True,
                "options": [{"name": "Small", "price_delta": 0}, {"name": "Large", "price_delta": 500}],
            },
            {
                "name": "Extras",
                "selection": "multiple",
                "required": False,
                "options": [
                    {"name": "Accessibility review", "price_delta": 1250},
                    {"name": "Performance review", "price_delta": 800},
                ],
            },
        ],
        "add_ons": [{"name": "Priority support", "price_delta": 900}, {"name": "Printed copy", "price_delta": 300}],
        "custom_fields": [
            {"key": "domain", "label": "Your domain", "field_type": "text", "required": True, "max_length": 253},
            {"key": "seats", "label": "Seats", "field_type": "number", "min_value": 1, "max_value": 500},
        ],
        "subscription_plans": [
            {"name": "Prepaid, 5% off", "billing_cycle": "one_time", "price_multiplier": "0.95"},
            {"name": "Monthly", "billing_cycle": "monthly", "price_delta": 0},
        ],
    }
    product = _created(
        stack,
        "/api/v1/products",
        {
            "slug": "website-audit",
            "name": "Website audit",
            "unit_amount": 4900,
            "currency": "usd",
            "feature_code": "audit",
            "purchase_duration_days": 365,
            "configuration": configuration,
        },
    )
    config = product["configuration"]
    option = {o["name"]: o["id"] for group in config["option_groups"] for o in group["options"]}
    add_on = {a["name"]: a["id"] for a in config["add_ons"]}
    plan = {p["name"]: p["id"] for p in config["subscription_plans"]}
    line = {
        "product_id": product["id"],
        "option_ids": [option["Large"], option["Accessibility review"], option["Performance review"]],
        "add_on_ids": [add_on["Priority support"]],
        "plan_id": plan["Prepaid, 5% off"],
        "quantity": 2,
        "custom_fields": {"domain": " shop.example.com ", "seats": 5},
    }

    invoice = _invoice(stack, "u-audit", [line])

    # By hand: 4900 + 500 (Large) + 1250 + 800 (both extras) + 900 (priority) = 8350 before the plan;
    # x 0.95 = 7932.5, rounded once, half to even: 7932 (half up would say 7933); two of them: 15864.
    assert (invoice["status"], invoice["currency"], invoice["subtotal"], invoice["total"]) == (
        "draft",
        "usd",
        15864,
        15864,
    )
    [priced] = invoice["lines"]
    assert (priced["base_amount"], priced["unit_amount"], priced["quantity"], priced["line_total"]) == (
        4900,
        7932,
        2,
        15864,
    )
    breakdown = priced["breakdown"]
    assert [o["delta"] for o in breakdown["options"]] == [500, 1250, 800]
    assert [a["delta"] for a in breakdown["add_ons"]] == [900]
    assert breakdown["before_plan"] == 8350
    assert (breakdown["plan"]["multiplier"], breakdown["plan"]["exact"], breakdown["plan"]["rounding"]) == (
        "0.95",
        "7932.5",
        "half_even",
    )
    assert priced["custom_fields"] == {"domain": "shop.example.com", "seats": 5}
    assert (priced["feature_code"], priced["purchase_duration_days"]) == ("audit", 365)
    assert stack.check("u-audit", "audit")["active"] is False

    session = _hosted_session(stack, invoice["id"])

    assert _invoice_status(stack, invoice["id"]) == "open"
    at_stripe = stack.stripe.v1.checkout.sessions.retrieve(session["stripe_session_id"])
    assert (at_stripe.mode, at_stripe.amount_total, at_stripe.currency) == ("payment", 15864, "usd")
    assert at_stripe.metadata is not None and at_stripe.metadata["invoice_id"] == str(invoice["id"])
    items = stack.stripe.v1.checkout.sessions.line_items.list(session["stripe_session_id"]).data
    assert [(item.price.unit_amount if item.price else None, item.quantity) for item in items] == [(7932, 2)]

    _pay(session["checkout_url"], email="buyer@example.com")

    eventually(lambda: _invoice_status(stack, invoice["id"]) == "paid", timeout=30, what="invoice paid")
    answer = eventually(
        lambda: (check := stack.check("u-audit", "audit"))["active"] and check, what="the feature's check active"
    )
    paid = _get(stack, f"/api/v1/billing/invoices/{invoice['id']}")
    paid_at = dt.datetime.fromisoformat(paid["paid_at"])
    assert dt.datetime.fromisoformat(answer["valid_to"]) == paid_at + dt.timedelta(days=365)
    done = _get(stack, f"/api/v1/billing/sessions/{session['id']}")
    assert (done["status"], done["customer_email"]) == ("completed", "buyer@example.com")
    purchase = Purchase.objects.get(invoice_line_id=priced["id"])
    assert (purchase.user_id, purchase.feature_code) == ("u-audit", "audit")
    # A refund of that payment ends the purchase (purchase_refund_apply keys by the payment intent).
    intent = Invoice.objects.get(pk=invoice["id"]).stripe_payment_intent_id
    assert intent and purchase.stripe_payment_intent_id == intent


def test_an_expired_session_is_swept_abandoned_recovered_by_email_then_slack_and_paid(
    stack: Stack, clocks: Clocks, recovery: Any, slack: SlackReceiver
) -> None:
    product = _plain_product(stack)
    invoice = _invoice(stack, "u-late", [{"product_id": product["id"], "quantity": 2}])
    assert invoice["total"] == 5000
    session = _hosted_session(stack, invoice["id"])
    first = _expire_and_abandon(stack, clocks, session)
    assert _invoice_status(stack, invoice["id"]) == "open"

    # Attempt 1: Stripe's recovery URL, emailed to finance.
    counts = _recovery_run()
    assert _only(counts) == {"examined": 1, "recovered": 1, "notified": 1, "failed": 0}
    [email] = mail.outbox
    assert email.to == [OPS] and f"invoice #{invoice['id']}" in email.subject and "50.00 USD" in email.subject
    match = re.search(r"Pay it here: (\S+)", str(email.body))
    assert match and match.group(1) == first.recovery_url
    page = _follow(match.group(1))  # the link works: Stripe opens a copy of the session and shows its page
    recovered = [s for s in stack.stripe.v1.checkout.sessions.list(params={"limit": 10}).data if s.recovered_from]
    assert [(s.recovered_from, s.url, s.status) for s in recovered] == [(first.stripe_session_id, page, "open")]
    assert slack.bodies == []

    # Not again before HOSTED_RECOVERY_RETRY_AFTER_SECONDS.
    assert _only(_recovery_run()) == _NOTHING_DONE
    clocks.advance(RETRY_AFTER + 60)

    # Attempt 2: the same way back, escalated to Slack.
    counts = _recovery_run()
    assert _only(counts) == {"examined": 1, "recovered": 1, "notified": 1, "failed": 0}
    assert len(mail.outbox) == 1
    [message] = slack.bodies
    assert message["channel"] == "#billing"
    assert f"Invoice #{invoice['id']} (50.00 USD)" in message["text"] and "attempt 2 of 2" in message["text"]
    link = message["text"].rsplit("Way back: ", 1)[1].strip()
    assert link == first.recovery_url
    attempts = list(RecoveryAttempt.objects.filter(session=first).order_by("number"))
    assert [(a.number, a.method, a.channel, a.notification_status) for a in attempts] == [
        (1, "stripe_recovery_url", "email", "sent"),
        (2, "stripe_recovery_url", "slack", "sent"),
    ]

    # The customer follows it (the session Stripe opened from it is still open) and pays.
    assert _follow(link) == page
    _pay(page)

    eventually(
        lambda: _invoice_status(stack, invoice["id"]) == "paid", timeout=30, what="invoice paid through the recovery"
    )
    sessions = _get(stack, f"/api/v1/billing/sessions?invoice_id={invoice['id']}")["results"]
    by_id = {s["id"]: s for s in sessions}
    assert by_id[first.pk]["status"] == "regenerated"
    [paid_one] = [s for s in sessions if s["id"] != first.pk]
    assert (paid_one["status"], paid_one["regenerated_from"]) == ("completed", first.pk)
    assert paid_one["stripe_session_id"] == recovered[0].id

    # A paid invoice gets no more reminders.
    clocks.advance(RETRY_AFTER + 60)
    assert _only(_recovery_run()) == _NOTHING_DONE
    assert (len(mail.outbox), len(slack.bodies)) == (1, 1)
    assert clocks.webhooks_refused() == []


def test_recovery_attempts_stop_at_the_maximum(
    stack: Stack, clocks: Clocks, recovery: Any, slack: SlackReceiver
) -> None:
    product = _plain_product(stack)
    invoice = _invoice(stack, "u-never", [{"product_id": product["id"], "quantity": 1}])
    session = _hosted_session(stack, invoice["id"])
    row = _expire_and_abandon(stack, clocks, session)

    for _ in range(MAX_ATTEMPTS):
        assert _only(_recovery_run()) == {"examined": 1, "recovered": 1, "notified": 1, "failed": 0}
        clocks.advance(RETRY_AFTER + 60)
    for _ in range(2):  # the maximum is reached: later runs, however late, do nothing more
        assert _only(_recovery_run()) == _NOTHING_DONE
        clocks.advance(RETRY_AFTER + 60)

    row.refresh_from_db()
    assert (row.status, row.recovery_attempts) == ("abandoned", MAX_ATTEMPTS)
    assert RecoveryAttempt.objects.filter(session__invoice_id=invoice["id"]).count() == MAX_ATTEMPTS
    assert (len(mail.outbox), len(slack.bodies)) == (1, 1)
    assert Invoice.objects.get(pk=invoice["id"]).status == "open"
    answer = _get(stack, f"/api/v1/billing/sessions/{row.pk}")
    assert (answer["status"], answer["recovery_attempts"]) == ("abandoned", MAX_ATTEMPTS)
    assert clocks.webhooks_refused() == []
