"""GET /api/v1/entitlements/check in one Redis round trip, outside DRF's request cycle.

A warm check needs three things from Redis: the API key's cache generation, the throttle counter of
the key's current window (INCR + EXPIRE) and the user's entitlement generation. The request names all
three before anything is read: the key's prefix is in the key, the project and the user are in the
query, and the key's id (its throttle counter) is known from this process's last sight of that key
(`VersionedCache.latest`), which the key generation read in the same pipeline then confirms or
refutes. Entries under a generation never change, so they come from the per-process memo; the
versioned-cache contract is untouched (every generation is read from Redis on every check).

Only a positive answer is given here, by the rules everything else uses: `api_client_of` decides the
key, `missing_scopes` the scopes, `parse_project_id` the project, `ApiKeyRateThrottle.window_for` and
`ThrottleWindow.allows` the budget, `client_authenticated` what follows authentication, and
`selectors.entitlement_check` the answer. Anything else (another method, no key, a key this process
has not seen or that changed, a missing scope, another project, a bad parameter, an exhausted budget,
an unreachable cache, an Accept header or `format` it does not serve) is handed to the DRF view,
`EntitlementCheckApi`, which answers it as it always has. A request counted in the round trip is
marked so (throttling.COUNTED_ATTR), and the DRF throttle does not count it twice. The schema is the
DRF view's: this callback names it as its `cls`, as apps/common/routing.py does.

Why not DRF for the warm path: its request wrapper, content negotiation, authentication, permission
and throttle classes and renderer cost about as much CPU as the rest of the check (bench/README.md).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import cache, caches
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import NoScriptError, RedisError
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from apps.common.query import instant_text
from apps.entitlements import selectors
from apps.entitlements.api import FEATURE_CODE_MAX, USER_ID_MAX, EntitlementCheckApi
from apps.entitlements.projection import cache_ident, entitlement_cache
from apps.projects.authentication import client_authenticated
from apps.projects.keys import prefix_of
from apps.projects.permissions import missing_scopes, parse_project_id
from apps.projects.selectors import ApiClient, api_client_of, api_key_cache
from apps.projects.throttling import ApiKeyRateThrottle, ThrottleWindow, local_count, mark_counted, raw_redis

_drf_view = EntitlementCheckApi.as_view()
_renderer = JSONRenderer()
_SCOPES = EntitlementCheckApi.required_scopes
# DRF's APIView sends Allow on every response; so does this path, with the same value (HEAD is
# served by get(), as Django's View.setup arranges on each dispatch).
_ALLOW = ", ".join(
    method.upper()
    for method in EntitlementCheckApi.http_method_names
    if hasattr(EntitlementCheckApi, method) or (method == "head" and hasattr(EntitlementCheckApi, "get"))
)
# Accept values DRF would answer with JSON without negotiating anything (the clients send these).
_PLAIN_ACCEPT = frozenset({"", "*/*", "application/json"})

# (key generation, entitlement generation, throttle count): None where the cache had no value.
Read = tuple[str | None, str | None, int | None]

# KEYS: the key generation, the entitlement generation, and (when a limit applies) the throttle
# counter; ARGV[1]: the counter's time to live. A missing value comes back as a nil.
_READ_SCRIPT = """
local count = false
if #KEYS == 3 then
  count = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[1])
end
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), count}
"""
_READ_SCRIPT_SHA = hashlib.sha1(_READ_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


@csrf_exempt
def entitlement_check(request: HttpRequest) -> HttpResponseBase:
    response = _warm_answer(request)
    return response if response is not None else _drf_view(request)


# For drf-spectacular and anything else that asks a DRF view callback for its class.
entitlement_check.cls = EntitlementCheckApi  # type: ignore[attr-defined]
entitlement_check.initkwargs = {}  # type: ignore[attr-defined]


def _warm_answer(request: HttpRequest) -> HttpResponse | None:
    """The 200 for a well-formed check by a key this process knows, or None to let DRF answer."""
    meta = request.META
    if request.method != "GET" or meta.get("HTTP_ACCEPT", "") not in _PLAIN_ACCEPT:
        return None
    raw_key = meta.get("HTTP_X_API_KEY", "").strip()
    prefix = prefix_of(raw_key)
    if prefix is None:
        return None
    # The client this process last saw for the prefix: it names the throttle counter to increment.
    expected = api_client_of(raw_key, api_key_cache.latest(prefix))
    if expected is None or missing_scopes(expected, _SCOPES):
        return None
    query = request.GET
    user_id = query.get("user_id", "")
    feature_code = query.get("feature_code", "")
    # Only a gate: a value text_param would refuse goes to DRF, which answers its 400.
    if not (0 < len(user_id) <= USER_ID_MAX and 0 < len(feature_code) <= FEATURE_CODE_MAX) or "format" in query:
        return None
    if "project_id" in query and not _same_project(query["project_id"], expected):
        return None

    throttle = ApiKeyRateThrottle()
    now = throttle.timer()
    window = throttle.window_for(expected, now)
    ident = cache_ident(expected.project_id, user_id)
    read = _round_trip(prefix, ident, window)
    if read is None:
        return None  # the cache did not answer: DRF's path reads the database and never denies
    key_generation, entitlement_generation, count = read
    if window is not None:
        mark_counted(request, window, count)
    if key_generation is None:
        return None
    client = api_client_of(raw_key, api_key_cache.get_under(prefix, key_generation))
    if client != expected:
        return None  # the key changed (revoked, new scopes or limit...): DRF resolves it afresh
    if window is not None and not window.allows(count):
        return None  # DRF answers the 429 with its Retry-After
    client_authenticated(client)
    active, valid_to = selectors.entitlement_check(
        project_id=client.project_id,
        user_id=user_id,
        feature_code=feature_code,
        generation=entitlement_generation,
    )
    body = {"feature_code": feature_code, "active": active, "valid_to": instant_text(valid_to) if valid_to else None}
    return HttpResponse(_renderer.render(body), content_type=_renderer.media_type, headers={"Allow": _ALLOW})


def _same_project(value: str, client: ApiClient) -> bool:
    try:
        return parse_project_id(value) == client.project_id
    except exceptions.ValidationError:
        return False


def _round_trip(prefix: str, ident: str, window: ThrottleWindow | None, *, loaded: bool = False) -> Read | None:
    """Both generations and the throttle count, in one round trip (a script); None if Redis fails."""
    key_generation_key = api_key_cache.generation_key(prefix)
    entitlement_generation_key = entitlement_cache.generation_key(ident)
    client = raw_redis()
    if client is None:
        # Not django-redis (the local-memory cache of tests and bare development): the same reads.
        values = cache.get_many([key_generation_key, entitlement_generation_key])
        count = local_count(window.key, window.period) if window is not None else None
        return _text(values.get(key_generation_key)), _text(values.get(entitlement_generation_key)), count
    backend: Any = caches["default"]
    keys = [backend.make_key(key_generation_key), backend.make_key(entitlement_generation_key)]
    if window is not None:
        keys.append(backend.make_key(window.key))
    try:
        # One command, one reply: a pipeline of GET, GET, INCR, EXPIRE costs the client about twice
        # the CPU (four commands packed, four replies parsed) for the same single round trip.
        key_generation, entitlement_generation, count = client.evalsha(
            _READ_SCRIPT_SHA, len(keys), *keys, window.period + 1 if window is not None else 0
        )
    except NoScriptError:
        if loaded:
            return None
        try:
            client.script_load(_READ_SCRIPT)  # after a Redis restart or SCRIPT FLUSH; once per server
        except RedisError:
            return None
        return _round_trip(prefix, ident, window, loaded=True)
    except RedisError:
        return None
    decode = backend.client.decode
    return (
        _text(decode(key_generation)) if key_generation is not None else None,
        _text(decode(entitlement_generation)) if entitlement_generation is not None else None,
        int(count) if window is not None else None,
    )


def _text(value: object) -> str | None:
    return str(value) if value is not None else None
