"""Account, webhook endpoints, events and test clocks."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from .. import clock
from ..api import ApiRequest, route
from ..errors import invalid
from ..params import get_bool, get_int, get_list, get_str, merge_metadata
from ..render import list_page, paginate
from ..sandbox import Sandbox
from ..shapes import catalog as shapes
from ..shapes.customers import deleted
from ..store import JsonObject


@route("GET", "/v1/account")
def get_account(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return shapes.account(1_700_000_000)


@route("GET", "/v1/accounts/{id}")
def get_account_by_id(sb: Sandbox, req: ApiRequest) -> JsonObject:
    if req.arg("id") != shapes.ACCOUNT_ID:
        sb.store.require(req.arg("id"), "account")
    return shapes.account(1_700_000_000)


@route("GET", "/v1/accounts")
def list_connected_accounts(sb: Sandbox, req: ApiRequest) -> JsonObject:
    # The sandbox is one platform account with no Connect accounts under it; dj-stripe's sync
    # lists them to sync each one's objects too.
    return paginate([], req.params, "/v1/accounts")


def _enabled_events(params: dict[str, Any]) -> list[str]:
    events = [str(e) for e in get_list(params, "enabled_events")]
    if not events:
        raise invalid("Missing required param: enabled_events.", "enabled_events", code="parameter_missing")
    return events


@route("POST", "/v1/webhook_endpoints")
def create_endpoint(sb: Sandbox, req: ApiRequest) -> JsonObject:
    params = req.params
    url = get_str(params, "url", required=True)
    assert url is not None
    store = sb.store
    endpoint = shapes.webhook_endpoint(store.new_id("we"), store.now(), url, _enabled_events(params))
    endpoint["description"] = get_str(params, "description")
    endpoint["api_version"] = get_str(params, "api_version")
    endpoint["metadata"] = merge_metadata({}, params.get("metadata", {}))
    secret = "whsec_" + secrets.token_hex(16)
    store.meta(endpoint["id"])["secret"] = secret
    sb.create(endpoint)
    # The signing secret is shown once, in the creation response, as at Stripe.
    return {**endpoint, "secret": secret}


@route("GET", "/v1/webhook_endpoints/{id}")
def get_endpoint(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "webhook_endpoint")


@route("POST", "/v1/webhook_endpoints/{id}")
def update_endpoint(sb: Sandbox, req: ApiRequest) -> JsonObject:
    endpoint = sb.store.require(req.arg("id"), "webhook_endpoint")
    params = req.params
    changes: dict[str, object] = {}
    if "url" in params:
        changes["url"] = get_str(params, "url", required=True)
    if "enabled_events" in params:
        changes["enabled_events"] = _enabled_events(params)
    if "description" in params:
        changes["description"] = get_str(params, "description")
    if "metadata" in params:
        changes["metadata"] = merge_metadata(endpoint["metadata"], params["metadata"])
    if "disabled" in params:
        changes["status"] = "disabled" if get_bool(params, "disabled") else "enabled"
    sb.update(endpoint, changes)
    return endpoint


@route("DELETE", "/v1/webhook_endpoints/{id}")
def delete_endpoint(sb: Sandbox, req: ApiRequest) -> JsonObject:
    endpoint = sb.store.require(req.arg("id"), "webhook_endpoint")
    stub = deleted(endpoint["id"], "webhook_endpoint")
    sb.store.replace(stub)
    return stub


@route("GET", "/v1/webhook_endpoints")
def list_endpoints(sb: Sandbox, req: ApiRequest) -> JsonObject:
    endpoints = [e for e in sb.store.newest_first("webhook_endpoint") if not e.get("deleted")]
    return paginate(endpoints, req.params, "/v1/webhook_endpoints")


@route("GET", "/v1/events/{id}")
def get_event(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "event")


def _type_matches(pattern: str, event_type: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


@route("GET", "/v1/events")
def list_events(sb: Sandbox, req: ApiRequest) -> JsonObject:
    """Every event the sandbox recorded, newest first. Silent changes (``/_sandbox/silent``, bulk
    creation) record none; an event whose delivery chaos dropped is here all the same, as at Stripe
    (``delivery_success=false`` finds the events some endpoint has not acknowledged)."""
    patterns = [str(t) for t in get_list(req.params, "types")]
    single = get_str(req.params, "type")
    if single is not None:
        patterns.append(single)
    delivered = get_bool(req.params, "delivery_success")
    checks: list[Callable[[JsonObject], bool]] = []
    if patterns:
        checks.append(lambda e: any(_type_matches(p, e["type"]) for p in patterns))
    if delivered is not None:
        checks.append(lambda e: (e["pending_webhooks"] == 0) is delivered)
    where = (lambda e: all(check(e) for check in checks)) if checks else None
    return list_page(sb.store, "event", req.params, "/v1/events", where)


# Test clocks: Stripe attaches them to customers; the sandbox has one global clock, so
# advancing any test clock moves the whole sandbox's "now" (see docs/sandbox.md).
@route("POST", "/v1/test_helpers/test_clocks")
def create_test_clock(sb: Sandbox, req: ApiRequest) -> JsonObject:
    frozen_time = get_int(req.params, "frozen_time", required=True)
    assert frozen_time is not None
    store = sb.store
    test_clock = shapes.test_clock(store.new_id("clock"), store.now(), frozen_time, get_str(req.params, "name"))
    return sb.create(test_clock)


@route("GET", "/v1/test_helpers/test_clocks/{id}")
def get_test_clock(sb: Sandbox, req: ApiRequest) -> JsonObject:
    return sb.store.require(req.arg("id"), "test_helpers.test_clock")


@route("GET", "/v1/test_helpers/test_clocks")
def list_test_clocks(sb: Sandbox, req: ApiRequest) -> JsonObject:
    clocks = [c for c in sb.store.newest_first("test_helpers.test_clock") if not c.get("deleted")]
    return paginate(clocks, req.params, "/v1/test_helpers/test_clocks")


@route("DELETE", "/v1/test_helpers/test_clocks/{id}")
def delete_test_clock(sb: Sandbox, req: ApiRequest) -> JsonObject:
    test_clock = sb.store.require(req.arg("id"), "test_helpers.test_clock")
    stub = deleted(test_clock["id"], "test_helpers.test_clock")
    sb.store.replace(stub)
    return stub


@route("POST", "/v1/test_helpers/test_clocks/{id}/advance")
def advance_test_clock(sb: Sandbox, req: ApiRequest) -> JsonObject:
    test_clock = sb.store.require(req.arg("id"), "test_helpers.test_clock")
    frozen_time = get_int(req.params, "frozen_time", required=True)
    assert frozen_time is not None
    if frozen_time < test_clock["frozen_time"]:
        raise invalid("frozen_time must be later than the clock's current frozen_time.", "frozen_time")
    clock.advance_to(sb, max(frozen_time, sb.store.now()))
    sb.update(test_clock, {"frozen_time": frozen_time})
    return test_clock
