"""`manage.py stripe_trigger`: the offline counterpart of the Stripe CLI's `stripe trigger`.

It makes the Stripe sandbox perform the real action that produces an event, so the signed event
reaches the service's webhook endpoint through the normal path. What the service itself does (a
checkout session) goes through the service's own code and Stripe gateway; what a customer or
Stripe's dashboard would do (paying on the hosted page, a refund, a cancellation, time passing)
goes to the sandbox over HTTP: its /v1 API with the sandbox key, and its /_sandbox control API.
apps/ never import the sandbox, nor `stripe` outside the gateway.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.checkout.models import BillingCustomer, CheckoutSession
from apps.checkout.services import checkout_session_create
from apps.common.exceptions import Conflict
from apps.common.stripe_gateway import StripeInvalidRequest, StripeUnavailable, prices_iter
from apps.projects.models import Project

OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"  # declined at payment (card_declined / generic_decline)
DECLINING_CARD = "pm_card_chargeCustomerFail"  # attaches, then every charge is declined


class TriggerError(Exception):
    """A clear, user-facing reason why nothing was triggered."""


def sandbox_url() -> str:
    """Where the sandbox is: STRIPE_API_HOST when the service points at it, else `make run`'s port."""
    host = getattr(settings, "STRIPE_API_HOST", None)
    if host:
        return str(host).rstrip("/")
    if settings.STRIPE_SECRET_KEY:
        raise TriggerError(
            "STRIPE_SECRET_KEY is set and STRIPE_API_HOST is not: this service talks to Stripe itself. "
            "stripe_trigger drives the offline sandbox only; against Stripe use the Stripe CLI (`stripe trigger`)."
        )
    return f"http://127.0.0.1:{sandbox_port()}"


def sandbox_port() -> int:
    """The port `make run` starts the sandbox on (STRIPE_SANDBOX_PORT, default 12111)."""
    return int(os.environ.get("STRIPE_SANDBOX_PORT", "12111"))


def webhook_secret_file() -> Path:
    """Where `make run` (devstack → seed_demo --webhook-secret-file) writes the endpoint's secret."""
    return Path(settings.VAR_DIR) / "sandbox" / "webhook-secret"


@dataclass
class Sandbox:
    """The sandbox over HTTP: /v1 with its key (as a dashboard would), /_sandbox for its clock."""

    base_url: str
    api_key: str

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = requests.request(method, self.base_url + path, timeout=30, **kwargs)
        except requests.ConnectionError:
            raise TriggerError(
                f"The Stripe sandbox is not running at {self.base_url}: start it with `make run` "
                "(or `make sandbox`), or set STRIPE_API_HOST to where it runs."
            ) from None
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            message = body.get("error", {}).get("message") if isinstance(body, dict) else None
            raise TriggerError(f"the sandbox answered {response.status_code} to {method} {path}: {message or body}")
        return body

    def api(self, method: str, path: str, fields: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if method == "GET":
            return self._send(method, path, params=fields, headers=headers)
        return self._send(method, path, data=fields, headers=headers)

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send(method, f"/_sandbox{path}", json=body)

    def pay(self, checkout_url: str, card: str, email: str) -> int:
        """Submit the hosted checkout page's form as the customer would: 303 paid, 402 declined."""
        try:
            response = requests.post(
                f"{checkout_url}/pay", data={"card_number": card, "email": email}, allow_redirects=False, timeout=30
            )
        except requests.ConnectionError:
            raise TriggerError(f"The Stripe sandbox is not running at {self.base_url}.") from None
        return response.status_code


@dataclass
class Context:
    sandbox: Sandbox
    project: Project
    user_id: str
    mode: str
    say: Callable[[str], None]


def _checkout(ctx: Context, mode: str, card: str = OK_CARD) -> CheckoutSession:
    """A checkout created by the service (as for a micro-app) and paid on the hosted page."""
    price = _demo_price(ctx, recurring=mode == CheckoutSession.Mode.SUBSCRIPTION)
    prefixes = list(ctx.project.allowed_redirect_prefixes)
    if not prefixes:
        raise TriggerError(f"project {ctx.project.slug} allows no redirect URL; add one (allowed_redirect_prefixes)")
    try:
        session = checkout_session_create(
            project=ctx.project,
            user_id=ctx.user_id,
            price_id=price["id"],
            mode=mode,
            success_url=f"{prefixes[0]}stripe-trigger/success",
            cancel_url=f"{prefixes[0]}stripe-trigger/cancel",
        )
    except ValidationError as exc:
        raise TriggerError(f"the service refused the checkout: {exc.messages}") from None
    except Conflict as exc:  # the user already holds such a subscription
        raise TriggerError(f"the service refused the checkout: {exc}") from None
    except (StripeInvalidRequest, StripeUnavailable) as exc:
        raise TriggerError(f"the checkout could not be created: {exc}") from None
    status = ctx.sandbox.pay(session.url, card, f"{ctx.user_id}@example.invalid")
    outcome = {303: "paid", 402: "declined"}.get(status, f"answered {status}")
    ctx.say(f"checkout {session.stripe_session_id} ({mode}, {price['id']}) on the hosted page: {outcome} with {card}")
    return session


def _demo_price(ctx: Context, *, recurring: bool) -> dict[str, Any]:
    """An active price of the project's catalog: its demo one (`<slug>-pro-monthly`...) first."""
    try:
        prices = [p for p in prices_iter(project_slug=ctx.project.slug) if p.get("active")]
    except StripeUnavailable as exc:
        raise TriggerError(f"could not list the prices: {exc}") from None
    fitting = [p for p in prices if (p.get("recurring") is not None) == recurring]
    # The project's own demo prices first, and the shortest period: a renewal a month away, not a year.
    periods = {"day": 0, "week": 1, "month": 2, "year": 3}
    fitting.sort(
        key=lambda p: (
            not str(p.get("lookup_key") or "").startswith(f"{ctx.project.slug}-"),
            periods.get((p.get("recurring") or {}).get("interval", ""), 0),
        )
    )
    if not fitting:
        kind = "recurring" if recurring else "one-time"
        raise TriggerError(f"the sandbox has no active {kind} price; `make run` seeds the demo catalog")
    return fitting[0]


def _customer_id(ctx: Context) -> str | None:
    row = BillingCustomer.objects.filter(project=ctx.project, user_id=ctx.user_id).first()
    return row.stripe_customer_id if row else None


def _live_subscription(ctx: Context) -> dict[str, Any]:
    """The user's active subscription; a subscription checkout first when there is none."""
    customer_id = _customer_id(ctx)
    if customer_id:
        for sub in ctx.sandbox.api("GET", "/v1/subscriptions", {"customer": customer_id})["data"]:
            if sub["status"] in ("active", "trialing"):
                return dict(sub)
    ctx.say(f"{ctx.user_id} has no active subscription: subscribing first")
    session = _checkout(ctx, CheckoutSession.Mode.SUBSCRIPTION)
    stripe_session = ctx.sandbox.api("GET", f"/v1/checkout/sessions/{session.stripe_session_id}")
    return dict(ctx.sandbox.api("GET", f"/v1/subscriptions/{stripe_session['subscription']}"))


def checkout_completed(ctx: Context) -> None:
    _checkout(ctx, ctx.mode)


def refund_last_payment(ctx: Context) -> None:
    customer_id = _customer_id(ctx)
    charges = ctx.sandbox.api("GET", "/v1/charges", {"customer": customer_id})["data"] if customer_id else []
    refundable = [c for c in charges if c["status"] == "succeeded" and not c["refunded"]]
    if not refundable:
        ctx.say(f"{ctx.user_id} has no payment to refund: paying first")
        session = _checkout(ctx, CheckoutSession.Mode.PAYMENT)
        stripe_session = ctx.sandbox.api("GET", f"/v1/checkout/sessions/{session.stripe_session_id}")
        intent = ctx.sandbox.api("GET", f"/v1/payment_intents/{stripe_session['payment_intent']}")
        refundable = [ctx.sandbox.api("GET", f"/v1/charges/{intent['latest_charge']}")]
    charge = refundable[0]
    refund = ctx.sandbox.api("POST", "/v1/refunds", {"charge": charge["id"]})
    ctx.say(f"refund {refund['id']} of charge {charge['id']} ({charge['amount']} {charge['currency']})")


def failed_renewal(ctx: Context) -> None:
    """The card declines from now on; the clock moves to the renewal, which fails: past_due."""
    sub = _live_subscription(ctx)
    ctx.sandbox.api("POST", f"/v1/subscriptions/{sub['id']}", {"default_payment_method": DECLINING_CARD})
    period_end = max(item["current_period_end"] for item in sub["items"]["data"])
    advanced = ctx.sandbox.control("POST", "/clock/advance", {"to": period_end + 60})
    after = ctx.sandbox.api("GET", f"/v1/subscriptions/{sub['id']}")
    ctx.say(
        f"subscription {sub['id']}: card set to {DECLINING_CARD}, sandbox clock advanced to its renewal "
        f"({dt.datetime.fromtimestamp(advanced['now'], tz=dt.UTC):%Y-%m-%d %H:%M} UTC); status now {after['status']}"
    )


def cancel_subscription(ctx: Context) -> None:
    sub = _live_subscription(ctx)
    canceled = ctx.sandbox.api("DELETE", f"/v1/subscriptions/{sub['id']}")
    ctx.say(f"subscription {sub['id']} canceled (status {canceled['status']})")


def failed_payment(ctx: Context) -> None:
    _checkout(ctx, CheckoutSession.Mode.PAYMENT, card=DECLINED_CARD)


# The event type -> the action that makes the sandbox emit it (and what else it emits).
ACTIONS: dict[str, Callable[[Context], None]] = {
    "checkout.session.completed": checkout_completed,
    "charge.refunded": refund_last_payment,
    "invoice.payment_failed": failed_renewal,
    "customer.subscription.updated": failed_renewal,
    "customer.subscription.deleted": cancel_subscription,
    "payment_intent.payment_failed": failed_payment,
}


def trigger(
    event_type: str, *, project_slug: str, user_id: str, mode: str, say: Callable[[str], None], wait_s: float = 10.0
) -> list[dict[str, Any]]:
    """Perform the action behind `event_type`; answers the events of that type it produced."""
    action = ACTIONS.get(event_type)
    if action is None:
        raise TriggerError(f"unsupported event type {event_type!r}; supported: {', '.join(sorted(ACTIONS))}")
    base_url = sandbox_url()
    _point_gateway_at(base_url)
    sandbox = Sandbox(base_url, _sandbox_key(project_slug))
    sandbox.control("GET", "/health")  # first: "not running" is the likeliest problem
    project = Project.objects.filter(slug=project_slug).first()
    if project is None:
        raise TriggerError(f"no project {project_slug!r}; `make run` seeds the demo project `demo`")
    endpoints = [e for e in sandbox.api("GET", "/v1/webhook_endpoints")["data"] if e["status"] == "enabled"]
    if not endpoints:
        say("warning: no webhook endpoint is registered in the sandbox, so the event goes nowhere")
    latest = sandbox.api("GET", "/v1/events", {"limit": "1"})["data"]
    action(Context(sandbox, project, user_id, mode, say))
    events = _new_events(sandbox, event_type, latest[0]["id"] if latest else None)
    if not events:
        raise TriggerError(f"the action ran but the sandbox recorded no {event_type} event")
    for event in events:
        say(f"event {event['id']} {event['type']} ({event['data']['object']['id']})")
        for delivery in _deliveries(sandbox, event["id"], len(endpoints), wait_s):
            say(f"  -> {delivery['url']}: {delivery['status']} {_last_answer(delivery)}")
    return events


def _point_gateway_at(base_url: str) -> None:
    """Run from a second terminal beside `make run`, nothing names the sandbox: do what devstack does
    for its own children (STRIPE_API_HOST and the sandbox key), so the checkout this command creates
    through the service's gateway reaches the same sandbox. A configured host or key is kept."""
    if not getattr(settings, "STRIPE_API_HOST", None) and not settings.STRIPE_SECRET_KEY:
        settings.STRIPE_API_HOST = base_url
        settings.STRIPE_SECRET_KEY = settings.STRIPE_SANDBOX_SECRET_KEY


def _sandbox_key(project_slug: str) -> str:
    # The key the service itself uses for the project; `make run`'s sandbox key when none is set.
    per_project: dict[str, str] = settings.STRIPE_PROJECT_SECRET_KEYS
    return per_project.get(project_slug) or settings.STRIPE_SECRET_KEY or settings.STRIPE_SANDBOX_SECRET_KEY


def _new_events(sandbox: Sandbox, event_type: str, after_id: str | None) -> list[dict[str, Any]]:
    """The events of `event_type` newer than `after_id` (the list is newest first)."""
    newer: list[dict[str, Any]] = []
    for event in sandbox.api("GET", "/v1/events", {"limit": "100"})["data"]:
        if event["id"] == after_id:
            break
        if event["type"] == event_type:
            newer.append(event)
    return list(reversed(newer))


def _deliveries(sandbox: Sandbox, event_id: str, endpoints: int, wait_s: float) -> list[dict[str, Any]]:
    """The event's deliveries, once each endpoint has had an attempt (or `wait_s` has passed)."""
    deadline = time.monotonic() + wait_s
    while True:
        deliveries: list[dict[str, Any]] = sandbox.control("GET", f"/deliveries?event_id={event_id}")["deliveries"]
        if sum(1 for d in deliveries if d.get("attempts")) >= endpoints or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.1)


def _last_answer(delivery: dict[str, Any]) -> str:
    attempts = delivery.get("attempts") or []
    if not attempts:
        return "(no attempt yet)"
    last = attempts[-1]
    return f"(HTTP {last['status']})" if last.get("status") else f"({last.get('error')})"
