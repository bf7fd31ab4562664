"""The aiohttp application: middleware for the Stripe protocol, and the routes."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import API_VERSION, accepted, context, control, resources
from .api import ROUTES, ApiHandler, ApiRequest
from .errors import StripeError, unknown_route
from .hosted import checkout as hosted_checkout
from .hosted import portal as hosted_portal
from .idempotency import StoredResponse, fingerprint
from .params import get_list, parse_pairs
from .render import expand
from .sandbox import Sandbox

SANDBOX = control.SANDBOX
# (method, route pattern) -> the parameters the route accepts (stripe_sandbox/accepted.py).
SPECS: web.AppKey[dict[tuple[str, str], accepted.Node]] = web.AppKey("specs", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Routes that change nothing: no Idempotency-Key handling, no persistence.
READ_METHODS = ("GET", "HEAD")

assert resources  # importing it registered the /v1 routes


def _authenticate(request: web.Request) -> str:
    """Only the sandbox's own key is valid, as only an account's own keys are at Stripe: a
    service configured with some other key would get 401 from Stripe too."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise StripeError(
            401,
            "You did not provide an API key. Provide it in the Authorization header (Bearer auth).",
        )
    if scheme.lower() != "bearer" or not secrets.compare_digest(key, request.app[SANDBOX].api_key):
        # Stripe shows the key's first characters and masks the rest.
        shown = key[:12] + "*" * max(0, len(key) - 12)
        raise StripeError(401, f"Invalid API Key provided: {shown}")
    return key


async def _params(request: web.Request) -> dict[str, object]:
    pairs = list(request.query.items())
    if request.method not in READ_METHODS and request.can_read_body:
        body = await request.post()
        pairs.extend((k, v) for k, v in body.items() if isinstance(v, str))
    return parse_pairs(pairs)


def _json_response(status: int, body: str, request_id: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="application/json", headers={"Request-Id": request_id})


@web.middleware
async def stripe_protocol(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = "req_" + secrets.token_hex(7)
    if not request.path.startswith("/v1/"):
        try:
            response = await handler(request)
        except StripeError as exc:
            response = exc.response()
        response.headers["Request-Id"] = request_id
        return response

    sb = request.app[SANDBOX]
    idem_key = request.headers.get("Idempotency-Key") if request.method not in READ_METHODS else None
    resource = request.match_info.route.resource
    try:
        _authenticate(request)
        sb.stats.record(request.method, resource.canonical if resource is not None else request.path)
        fault = sb.faults.take(request.method, request.path)
        if fault is not None and fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault is not None and fault.status is not None and not fault.after_apply:
            sb.stats.record_fault(fault.status)
            response = fault.response()
            response.headers["Request-Id"] = request_id
            return response
        params = await _params(request)
        spec = request.app[SPECS].get((request.method, resource.canonical)) if resource is not None else None
        if spec is not None:
            # Before the Idempotency-Key is looked at: Stripe saves no result for a request whose
            # parameters fail validation, so the same key can be retried with the right ones.
            accepted.check(params, spec)
        if idem_key:
            stored = sb.idempotency.get(idem_key)
            request_print = fingerprint(request.method, request.path, params)
            if stored is not None:
                if stored.fingerprint != request_print:
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{idem_key}' if you meant to execute a different "
                        "request.",
                        error_type="idempotency_error",
                    )
                response = _json_response(stored.status, stored.body, request_id)
                response.headers["Idempotent-Replayed"] = "true"
                response.headers["Original-Request"] = request_id
                return response
        request["params"] = params
        rid_token = context.request_id.set(request_id)
        key_token = context.idempotency_key.set(idem_key)
        try:
            response = await handler(request)
        finally:
            context.request_id.reset(rid_token)
            context.idempotency_key.reset(key_token)
        assert isinstance(response, web.Response)
        status, body = response.status, response.text or ""
    except web.HTTPNotFound:
        error = unknown_route(request.method, request.path)
        status, body = error.status, json.dumps(error.body())
    except web.HTTPMethodNotAllowed:
        error = unknown_route(request.method, request.path)
        status, body = error.status, json.dumps(error.body())
    except StripeError as exc:
        if exc.status == 401:
            return web.Response(
                status=401,
                text=json.dumps(exc.body()),
                content_type="application/json",
                headers={"Request-Id": request_id},
            )
        status, body = exc.status, json.dumps(exc.body())
        if exc.error_type == "idempotency_error" or exc.code == "parameter_unknown":
            return _json_response(status, body, request_id)
    if request.method not in READ_METHODS:
        if idem_key and status < 500:
            sb.idempotency.put(
                idem_key,
                StoredResponse(fingerprint(request.method, request.path, request.get("params", {})), status, body),
            )
        sb.persist_soon()
        if fault is not None and fault.after_apply and fault.status is not None:
            # The write happened and its answer is stored; the client only sees the fault.
            sb.stats.record_fault(fault.status)
            response = fault.response()
            response.headers["Request-Id"] = request_id
            return response
    response = _json_response(status, body, request_id)
    response.headers["Stripe-Version"] = API_VERSION
    return response


def _wrap(api_handler: ApiHandler) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        sb = request.app[SANDBOX]
        params = request["params"]
        result = api_handler(sb, ApiRequest(request.method, request.path, params, dict(request.match_info)))
        expand_paths = [str(p) for p in get_list(params, "expand")]
        body = json.dumps(expand(sb.store, result, expand_paths) if expand_paths else result)
        return web.Response(text=body, content_type="application/json")

    return handle


def create_app(sb: Sandbox) -> web.Application:
    app = web.Application(middlewares=[stripe_protocol])
    app[SANDBOX] = sb
    app[SPECS] = {}
    for method, path, api_handler in ROUTES:
        app.router.add_route(method, path, _wrap(api_handler))
        app[SPECS][(method, path)] = accepted.spec_for(method, path)  # a route without a list fails here
    app.router.add_routes(control.routes)
    app.router.add_routes(hosted_checkout.routes)
    app.router.add_routes(hosted_portal.routes)

    async def close(_: web.Application) -> None:
        await sb.close()

    app.on_cleanup.append(close)
    return app
