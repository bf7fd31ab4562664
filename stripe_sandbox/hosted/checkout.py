"""The hosted checkout page: ``GET /checkout/{id}``, ``POST .../pay``, ``POST .../cancel``; and a
recovery URL, ``GET /checkout/recover/{token}``, which opens a copy of an expired session."""

from __future__ import annotations

from aiohttp import web

from .. import checkout_lifecycle as lifecycle
from ..cards import CHECKOUT_CHOICES
from ..checkout_flow import complete
from ..control import SANDBOX
from ..errors import StripeError
from ..store import JsonObject
from .html import escape, money, page

routes = web.RouteTableDef()


def _session(request: web.Request) -> JsonObject | None:
    """The session, expired first if its ``expires_at`` has passed: no one pays a session late."""
    sb = request.app[SANDBOX]
    session = sb.store.get(request.match_info["id"], "checkout.session")
    if session is not None and lifecycle.expire_if_due(sb, session):
        sb.persist_soon()
    return session


def _render(request: web.Request, session: JsonObject, error: str | None = None, status: int = 200) -> web.Response:
    items = request.app[SANDBOX].store.meta(session["id"]).get("line_items", [])
    rows = "".join(
        f"<tr><td>{escape(item['description'])}</td><td>{item['quantity']}</td>"
        f"<td>{money(item['amount_total'], item['currency'])}"
        f"{' / ' + escape(item['price']['recurring']['interval']) if item['price']['recurring'] else ''}</td></tr>"
        for item in items
    )
    choices = "".join(
        f'<label><input type="radio" name="card_number" value="{number}"{" checked" if i == 0 else ""}> '
        f"{escape(label)}</label><br>"
        for i, (number, label) in enumerate(CHECKOUT_CHOICES)
    )
    trial = request.app[SANDBOX].store.meta(session["id"]).get("trial_days")
    body = f"""<table><tr><th>Item</th><th>Qty</th><th>Amount</th></tr>{rows}</table>
<p>Total: <strong>{money(session["amount_total"], session["currency"])}</strong>
{f"(free trial: {trial} days)" if trial else ""}</p>
{f'<p class="error" role="alert">{escape(error)}</p>' if error else ""}
<form method="post" action="/checkout/{escape(session["id"])}/pay">
<p><label>Email <input type="email" name="email" value="{escape(session["customer_email"] or "")}"></label></p>
<p><label>Name on card <input name="name"></label></p>
<fieldset><legend>Test card</legend>{choices}</fieldset>
<p><button type="submit">Pay</button></p></form>
<form method="post" action="/checkout/{escape(session["id"])}/cancel"><button type="submit">Cancel</button></form>"""
    return page("Checkout", body, status)


def _not_open(session: JsonObject | None) -> web.Response:
    if session is None:
        return page("Checkout", "<p>No such checkout session.</p>", 404)
    return page("Checkout", f"<p>This checkout session is {escape(session['status'])}.</p>", 409)


@routes.get("/checkout/{id}")
async def show(request: web.Request) -> web.Response:
    session = _session(request)
    if session is None or session["status"] != "open":
        return _not_open(session)
    return _render(request, session)


@routes.post("/checkout/{id}/pay")
async def pay(request: web.Request) -> web.Response:
    session = _session(request)
    if session is None or session["status"] != "open":
        return _not_open(session)
    form = await request.post()
    card_number = str(form.get("card_number") or "4242424242424242")
    email = str(form.get("email") or "") or None
    name = str(form.get("name") or "") or None
    sb = request.app[SANDBOX]
    try:
        complete(sb, session, card_number, email, name)
    except StripeError as exc:
        sb.persist_soon()
        return _render(request, session, exc.message, status=402)
    sb.persist_soon()
    location = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
    raise web.HTTPSeeOther(location)


@routes.post("/checkout/{id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    session = _session(request)
    if session is None or session["status"] != "open":
        return _not_open(session)
    if not session["cancel_url"]:
        return page("Checkout", "<p>Checkout cancelled. This session has no cancel_url.</p>")
    # Stripe leaves the session open when the customer goes back; it expires later.
    raise web.HTTPSeeOther(session["cancel_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]))


@routes.get("/checkout/recover/{token}")
async def recover(request: web.Request) -> web.Response:
    """Stripe's recovery URL: a new session copying the expired one (``recovered_from`` set), then its page."""
    sb = request.app[SANDBOX]
    try:
        session = lifecycle.recover(sb, request.match_info["token"])
    except lifecycle.RecoveryRefused as exc:
        sb.persist_soon()
        return page("Checkout", f"<p>{escape(exc.message)}</p>", exc.status)
    sb.persist_soon()
    raise web.HTTPFound(session["url"])
