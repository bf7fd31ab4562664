"""``/_sandbox/*``: the test-control API (JSON in, JSON out, no API key)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import API_VERSION, billing, charging, clock, context
from .errors import StripeError, invalid
from .sandbox import Sandbox

SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox", Sandbox)
routes = web.RouteTableDef()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = json.loads(await request.text() or "{}")
    except json.JSONDecodeError:
        raise invalid("The body must be JSON.") from None
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.")
    return data


@routes.get("/_sandbox/health")
async def health(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    return _json(
        {"status": "ok", "api_version": API_VERSION, "now": sb.store.now(), "clock_offset": sb.store.clock_offset}
    )


@routes.post("/_sandbox/reset")
async def reset(request: web.Request) -> web.Response:
    request.app[SANDBOX].reset()
    return _json({"reset": True})


@routes.get("/_sandbox/config")
async def get_config(request: web.Request) -> web.Response:
    return _json(request.app[SANDBOX].config.as_dict())


@routes.post("/_sandbox/config")
async def set_config(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    sb.config.update(await _body(request))
    return _json(sb.config.as_dict())


@routes.get("/_sandbox/clock")
async def get_clock(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    return _json({"now": sb.store.now(), "offset": sb.store.clock_offset})


@routes.post("/_sandbox/clock/advance")
async def advance_clock(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    body = await _body(request)
    if "to" in body:
        target = int(body["to"])
    elif "seconds" in body:
        target = sb.store.now() + int(body["seconds"])
    else:
        raise invalid("Give 'seconds' or 'to'.")
    if target < sb.store.now():
        raise invalid("The clock only moves forward.", "to")
    ran = clock.advance_to(sb, target)
    return _json({"now": sb.store.now(), "offset": sb.store.clock_offset, "transitions": ran})


@routes.get("/_sandbox/faults")
async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": request.app[SANDBOX].faults.as_list()})


@routes.post("/_sandbox/faults")
async def add_fault(request: web.Request) -> web.Response:
    rule = request.app[SANDBOX].faults.add(await _body(request))
    return _json({"id": rule.id, "faults": request.app[SANDBOX].faults.as_list()})


@routes.delete("/_sandbox/faults")
async def clear_faults(request: web.Request) -> web.Response:
    request.app[SANDBOX].faults.clear()
    return _json({"faults": []})


@routes.get("/_sandbox/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    filters = {
        k: v for k, v in request.query.items() if k in ("event_id", "endpoint_id", "status", "event_type", "kind")
    }
    return _json({"deliveries": request.app[SANDBOX].delivery.as_list(filters)})


@routes.post("/_sandbox/events/{id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    """Deliver an old event again (late), with a fresh signature."""
    sb = request.app[SANDBOX]
    event = sb.store.require(request.match_info["id"], "event")
    body = await _body(request)
    endpoints = [e for e in sb.store.newest_first("webhook_endpoint") if not e.get("deleted")]
    if "endpoint_id" in body:
        endpoints = [e for e in endpoints if e["id"] == body["endpoint_id"]]
    scheduled = sb.delivery.schedule(event, endpoints, kind="redelivery")
    return _json({"scheduled": [d.id for d in scheduled]})


# -- silent changes: state moves, no event is recorded or delivered ---------------------


@routes.post("/_sandbox/silent/subscriptions/{id}/cancel")
async def silent_cancel(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    sub = sb.store.require(request.match_info["id"], "subscription")
    with context.silently():
        billing.cancel_subscription(sb, sub)
    sb.persist_soon()
    return _json(sub)


@routes.post("/_sandbox/silent/charges/{id}/refund")
async def silent_refund(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    charge = sb.store.require(request.match_info["id"], "charge")
    body = await _body(request)
    amount = body.get("amount")
    with context.silently():
        refund = charging.refund_charge(sb, charge, int(amount) if amount is not None else None, None, {})
    sb.persist_soon()
    return _json(refund)


@routes.post("/_sandbox/silent/objects/{id}")
async def silent_update(request: web.Request) -> web.Response:
    """Overwrite top-level fields of any object, e.g. ``{"status": "past_due"}``."""
    sb = request.app[SANDBOX]
    obj = sb.store.get(request.match_info["id"])
    if obj is None:
        raise StripeError(404, f"No such object: '{request.match_info['id']}'", code="resource_missing", param="id")
    changes = await _body(request)
    if {"id", "object"} & set(changes):
        raise invalid("id and object cannot be changed.")
    with context.silently():
        sb.update(obj, changes)
    sb.persist_soon()
    return _json(obj)
