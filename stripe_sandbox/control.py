"""``/_sandbox/*``: the test-control API (JSON in, JSON out, no API key)."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from . import API_VERSION, bulk, clock, silent
from .errors import StripeError, invalid
from .sandbox import Sandbox
from .store import JsonObject

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


@routes.get("/_sandbox/requests")
async def request_stats(request: web.Request) -> web.Response:
    """How many ``/v1`` requests were answered since the last reset, by route, and how many faulted."""
    return _json(request.app[SANDBOX].stats.as_dict())


@routes.delete("/_sandbox/requests")
async def reset_request_stats(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    sb.stats.reset()
    return _json(sb.stats.as_dict())


# -- chaos on delivery ------------------------------------------------------------------


@routes.post("/_sandbox/chaos/drop")
async def drop_deliveries(request: web.Request) -> web.Response:
    """Drop the next ``count`` (default 1) deliveries of events matching ``event_type`` (default
    every type; ``*`` and ``prefix.*`` patterns), optionally to one ``endpoint_id``. The events are
    recorded as usual; the endpoint never hears of them."""
    sb = request.app[SANDBOX]
    body = await _body(request)
    unknown = set(body) - {"count", "event_type", "endpoint_id"}
    if unknown:
        raise invalid(f"Unknown fields: {sorted(unknown)}")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise invalid("count must be a positive integer", "count")
    event_type = body.get("event_type", "*")
    endpoint_id = body.get("endpoint_id")
    if not isinstance(event_type, str) or (endpoint_id is not None and not isinstance(endpoint_id, str)):
        raise invalid("event_type and endpoint_id are strings")
    rule = sb.delivery.add_drop(count, event_type, endpoint_id)
    return _json({"id": rule.id, "drops": [asdict(r) for r in sb.delivery.drop_rules]})


@routes.get("/_sandbox/chaos/drop")
async def list_drops(request: web.Request) -> web.Response:
    return _json({"drops": [asdict(r) for r in request.app[SANDBOX].delivery.drop_rules]})


@routes.delete("/_sandbox/chaos/drop")
async def clear_drops(request: web.Request) -> web.Response:
    request.app[SANDBOX].delivery.drop_rules.clear()
    return _json({"drops": []})


# -- bulk creation: many objects at once, no events -------------------------------------


def _settle_bulk(sb: Sandbox) -> None:
    # Millions of long-lived dicts: left to the cyclic GC, every full collection walks them all
    # and list pages stall (p99 40 ms at 100,000 subscriptions). They hold no cycles, so freezing
    # them costs nothing: refcounting still frees them on reset.
    gc.freeze()
    sb.persist_soon()


@routes.post("/_sandbox/bulk/subscriptions")
async def bulk_subscriptions(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    result = bulk.create_subscriptions(sb, await _body(request))
    _settle_bulk(sb)
    return _json(result)


@routes.post("/_sandbox/bulk/payments")
async def bulk_payments(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    result = bulk.create_payments(sb, await _body(request))
    _settle_bulk(sb)
    return _json(result)


# -- silent changes: state moves, no event is recorded or delivered ---------------------

SilentChange = Callable[[Sandbox, JsonObject, dict[str, Any]], JsonObject]


def _silent_route(path: str, object_type: str, change: SilentChange) -> None:
    async def handle(request: web.Request) -> web.Response:
        sb = request.app[SANDBOX]
        obj = sb.store.require(request.match_info["id"], object_type)
        result = change(sb, obj, await _body(request))
        sb.persist_soon()
        return _json(result)

    routes.post(path)(handle)


_silent_route("/_sandbox/silent/subscriptions/{id}/cancel", "subscription", silent.cancel_subscription)
_silent_route("/_sandbox/silent/subscriptions/{id}/price", "subscription", silent.reprice_subscription)
_silent_route("/_sandbox/silent/subscriptions/{id}/period_end", "subscription", silent.move_period_end)
_silent_route(
    "/_sandbox/silent/subscriptions/{id}/cancel_at_period_end", "subscription", silent.set_cancel_at_period_end
)
_silent_route("/_sandbox/silent/charges/{id}/refund", "charge", silent.refund_charge)
_silent_route("/_sandbox/silent/payment_intents/{id}", "payment_intent", silent.change_payment_intent)
_silent_route("/_sandbox/silent/customers/{id}/delete", "customer", silent.delete_customer)


def _any_object(request: web.Request) -> JsonObject:
    sb = request.app[SANDBOX]
    obj = sb.store.get(request.match_info["id"])
    if obj is None or obj.get("deleted"):
        raise StripeError(404, f"No such object: '{request.match_info['id']}'", code="resource_missing", param="id")
    return obj


@routes.post("/_sandbox/silent/objects/{id}/metadata")
async def silent_metadata(request: web.Request) -> web.Response:
    """``{"metadata": {"user_id": ""}}``: merge as Stripe does (an empty value removes the key)."""
    sb = request.app[SANDBOX]
    obj = silent.change_metadata(sb, _any_object(request), await _body(request))
    sb.persist_soon()
    return _json(obj)


@routes.post("/_sandbox/silent/objects/{id}")
async def silent_update(request: web.Request) -> web.Response:
    """Overwrite top-level fields of any object, e.g. ``{"status": "past_due"}``."""
    sb = request.app[SANDBOX]
    obj = silent.update_fields(sb, _any_object(request), await _body(request))
    sb.persist_soon()
    return _json(obj)
