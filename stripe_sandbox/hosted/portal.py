"""The hosted customer portal: list subscriptions, cancel (now / at period end), switch price."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from .. import billing, context
from ..control import SANDBOX
from ..errors import StripeError
from ..sandbox import Sandbox
from ..store import JsonObject
from .html import escape, money, page

routes = web.RouteTableDef()


def _date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _portal(request: web.Request) -> tuple[Sandbox, JsonObject] | None:
    sb = request.app[SANDBOX]
    session = sb.store.get(request.match_info["id"], "billing_portal.session")
    return (sb, session) if session is not None else None


def _subscription_block(sb: Sandbox, session: JsonObject, sub: JsonObject) -> str:
    item = sub["items"]["data"][0]
    price = item["price"]
    base = f"/portal/{escape(session['id'])}/subscriptions/{escape(sub['id'])}"
    options = "".join(
        f'<option value="{escape(p["id"])}">{escape(p["nickname"] or p["id"])} - '
        f"{money(p['unit_amount'], p['currency'])} / {escape(p['recurring']['interval'])}</option>"
        for p in sb.store.newest_first("price")
        if p["active"] and p["type"] == "recurring" and p["currency"] == price["currency"] and p["id"] != price["id"]
    )
    status = escape(sub["status"])
    ending = " (cancels at period end)" if sub["cancel_at_period_end"] else ""
    resume = f'<form method="post" action="{base}/resume"><button type="submit">Keep subscription</button></form>'
    switch = (
        f'<form method="post" action="{base}/switch"><select name="price">{options}</select> '
        '<button type="submit">Switch plan</button></form>'
    )
    actions = ""
    if sub["status"] not in ("canceled", "incomplete_expired"):
        actions = f"""
<form method="post" action="{base}/cancel"><input type="hidden" name="when" value="period_end">
<button type="submit">Cancel at period end</button></form>
<form method="post" action="{base}/cancel"><input type="hidden" name="when" value="now">
<button type="submit">Cancel now</button></form>
{resume if ending else ""}
{switch if options else ""}"""
    return f"""<section><h2>{escape(sub["id"])}</h2>
<p>Status: <strong>{status}</strong>{ending}. Price {escape(price["id"])}:
{money(price["unit_amount"], price["currency"])} x {item["quantity"]}.
Current period: {_date(item["current_period_start"])} - {_date(item["current_period_end"])}.</p>{actions}</section>"""


@routes.get("/portal/{id}")
async def show(request: web.Request) -> web.Response:
    found = _portal(request)
    if found is None:
        return page("Customer portal", "<p>No such portal session.</p>", 404)
    sb, session = found
    subs = [s for s in sb.store.newest_first("subscription") if s["customer"] == session["customer"]]
    blocks = "".join(_subscription_block(sb, session, s) for s in subs) or "<p>No subscriptions.</p>"
    back = f'<p><a href="{escape(session["return_url"])}">Return</a></p>' if session["return_url"] else ""
    return page("Customer portal", blocks + back)


def _owned_subscription(sb: Sandbox, session: JsonObject, sub_id: str) -> JsonObject:
    sub = sb.store.require(sub_id, "subscription")
    if sub["customer"] != session["customer"]:
        raise StripeError(404, "No such subscription for this customer.", code="resource_missing")
    return sub


@routes.post("/portal/{id}/subscriptions/{sub}/{action}")
async def act(request: web.Request) -> web.Response:
    found = _portal(request)
    if found is None:
        return page("Customer portal", "<p>No such portal session.</p>", 404)
    sb, session = found
    form = await request.post()
    action = request.match_info["action"]
    try:
        sub = _owned_subscription(sb, session, request.match_info["sub"])
        with context.automatic():
            if action == "cancel" and form.get("when") == "now":
                billing.cancel_subscription(sb, sub)
            elif action == "cancel":
                sb.update(sub, billing.set_cancel_at_period_end(sb, sub, True), "customer.subscription.updated")
            elif action == "resume":
                sb.update(sub, billing.set_cancel_at_period_end(sb, sub, False), "customer.subscription.updated")
            elif action == "switch":
                price = sb.store.require(str(form.get("price") or ""), "price", "price")
                items = billing.replace_items(sb, sub, [{"id": sub["items"]["data"][0]["id"], "price": price}])
                sb.update(sub, {"items": items}, "customer.subscription.updated")
            else:
                return page("Customer portal", "<p>Unknown action.</p>", 404)
    except StripeError as exc:
        return page("Customer portal", f'<p class="error">{escape(exc.message)}</p>', exc.status)
    sb.persist_soon()
    raise web.HTTPSeeOther(f"/portal/{session['id']}")
