"""How a checkout session ends without a payment, and Stripe's abandoned-cart recovery.

A session expires by ``POST /v1/checkout/sessions/{id}/expire``, by the clock passing its
``expires_at`` (clock.py), or when its hosted page is visited after that time. When it was created
with ``after_expiration[recovery][enabled]=true``, expiry gives it a recovery URL valid for 30 days:
opening it creates a new session copying the old one, with ``recovered_from`` naming the old one.
"""

from __future__ import annotations

import copy

from . import context
from .sandbox import Sandbox
from .shapes import checkout as shapes
from .store import JsonObject, Store

# Stripe's bounds for ``expires_at``, from the session's creation, and its default.
MIN_EXPIRY_S = 30 * 60
MAX_EXPIRY_S = 24 * 3600
DEFAULT_EXPIRY_S = MAX_EXPIRY_S
# How long Stripe keeps a recovery URL usable after the session expired.
RECOVERY_VALID_S = 30 * 86400
RECOVERY_PATH = "/checkout/recover/"

# What a recovered session copies from the expired one: the fields the merchant set at creation...
COPIED_FIELDS = (
    "success_url",
    "cancel_url",
    "client_reference_id",
    "customer",
    "customer_email",
    "customer_creation",
    "metadata",
    "currency",
    "amount_subtotal",
    "amount_total",
    "total_details",
    "locale",
    "payment_method_types",
)
# ...and the side data the hosted page and the payment use (line items are copied with new ids).
COPIED_META = (
    "subscription_metadata",
    "trial_days",
    "subscription_description",
    "payment_intent_metadata",
    "payment_intent_description",
)


class RecoveryRefused(Exception):
    """A recovery URL that cannot give a session: an HTTP status and the page's sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def new_session_id(store: Store) -> str:
    return "cs_test_" + store.new_id("x", 58)[2:]


def hosted_url(sb: Sandbox, session_id: str) -> str:
    return f"{sb.public_url}/checkout/{session_id}"


def expire(sb: Sandbox, session: JsonObject, at: int | None = None) -> None:
    """open -> expired at ``at`` (now by default): the URL goes, a recovery URL comes when recovery is
    enabled, an unpaid payment intent is cancelled, and ``checkout.session.expired`` is sent."""
    at = sb.store.now() if at is None else at
    changes: JsonObject = {"status": "expired", "url": None}
    recovery = (session.get("after_expiration") or {}).get("recovery")
    if recovery and recovery["enabled"]:
        token = sb.store.new_id("rcv", 32)
        sb.store.meta(token)["recovery_of"] = session["id"]
        changes["after_expiration"] = {
            "recovery": {**recovery, "expires_at": at + RECOVERY_VALID_S, "url": sb.public_url + RECOVERY_PATH + token}
        }
    sb.update(session, changes)
    _cancel_payment_intent(sb, session, at)
    sb.emit("checkout.session.expired", session)


def expire_if_due(sb: Sandbox, session: JsonObject) -> bool:
    """Expire an open session whose ``expires_at`` has passed without a clock advance (real time
    moves the sandbox clock too), so that no one pays a session Stripe would have expired."""
    if session["status"] != "open" or sb.store.now() < session["expires_at"]:
        return False
    with context.automatic():
        expire(sb, session, session["expires_at"])
    return True


def _cancel_payment_intent(sb: Sandbox, session: JsonObject, at: int) -> None:
    # A payment-mode session has an intent only once a payment was tried (here: a declined card);
    # an expired session can no longer be paid, so Stripe cancels what it left behind.
    pi = sb.store.get(session["payment_intent"], "payment_intent") if session.get("payment_intent") else None
    if pi is None or pi["status"] in ("succeeded", "canceled"):
        return
    sb.update(pi, {"status": "canceled", "canceled_at": at, "cancellation_reason": "automatic"})
    sb.emit("payment_intent.canceled", pi)


def recover(sb: Sandbox, token: str) -> JsonObject:
    """The open session a recovery URL leads to: the one it already opened if still open (a second
    click, a mail scanner), else a new copy of the expired session. Raises RecoveryRefused."""
    store = sb.store
    link = store.internal.get(token)
    old_id = link.get("recovery_of") if link else None
    old = store.get(old_id, "checkout.session") if old_id else None
    if link is None or old is None:
        raise RecoveryRefused(404, "No such recovery link.")
    recovery = old["after_expiration"]["recovery"]
    if store.now() > recovery["expires_at"]:
        raise RecoveryRefused(410, "This recovery link has expired. Ask the seller for a new checkout link.")
    for session_id in link.get("sessions", []):
        opened = store.get(session_id, "checkout.session")
        if opened is None:
            continue
        expire_if_due(sb, opened)
        if opened["status"] == "complete":
            raise RecoveryRefused(410, "This checkout was already completed through this recovery link.")
        if opened["status"] == "open":
            return opened
    session = _copy(sb, old)
    link.setdefault("sessions", []).append(session["id"])
    return session


def _copy(sb: Sandbox, old: JsonObject) -> JsonObject:
    store = sb.store
    now = store.now()
    session_id = new_session_id(store)
    session = shapes.checkout_session(session_id, now, old["mode"], now + DEFAULT_EXPIRY_S, hosted_url(sb, session_id))
    session.update({name: copy.deepcopy(old[name]) for name in COPIED_FIELDS})
    recovery = old["after_expiration"]["recovery"]
    # The copy can be recovered in its turn; the promotion-code switch applies to the copies.
    session["after_expiration"] = shapes.after_expiration(recovery["enabled"], recovery["allow_promotion_codes"])
    if recovery["allow_promotion_codes"]:
        session["allow_promotion_codes"] = True
    session["recovered_from"] = old["id"]
    old_meta = store.meta(old["id"])
    meta = store.meta(session_id)
    for name in COPIED_META:
        if name in old_meta:
            meta[name] = copy.deepcopy(old_meta[name])
    meta["line_items"] = [{**copy.deepcopy(item), "id": store.new_id("li")} for item in old_meta["line_items"]]
    return sb.create(session)
