"""The OpenAPI document: naming, the answers every operation can give, and the Stripe webhook.

Naming: each view nests its own `InputSerializer` and `OutputSerializer`; drf-spectacular would name
all of them "Input"/"Output" and collide, so components take the view's name as a prefix instead
(WhoAmIApi.OutputSerializer → WhoAmIOutput).

Answers: the schema must list every status an operation can really answer, with its body, or
clients (and schemathesis) are told lies. The common ones follow from how a view is built, so
AutoSchema adds them instead of every view repeating them:

- 400 on every keyed operation: a body or a parameter that fails validation, or a NUL byte anywhere
  in the path or the query (apps/common/middleware.py refuses those before any view);
- 401, 403 and 429 on every keyed operation (the API key, its scopes and project, its rate limit);
- 404 where the path names an object (another project's object is a 404 too);
- 409 where the operation honours `Idempotency-Key` (apps/common/idempotency.py), which is also
  declared as a header parameter there;
- 413 and 415 where the operation takes a body;
- 502 where the view calls Stripe (`calls_stripe = True` on the view).

A view's own `responses` win over these (their descriptions are more precise); a declared error
without a body gets the shared error body.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from apps.common.idempotency import HEADER as IDEMPOTENCY_HEADER
from apps.common.idempotency import KEY_PATTERN, honours_idempotency_key


class ErrorSerializer(serializers.Serializer[Any]):
    """The body of every 4xx but a validation failure: `{"detail": "..."}`."""

    detail = serializers.CharField(help_text="What was wrong, in words a caller can act on.")


class StripeErrorSerializer(serializers.Serializer[Any]):
    """The body of a 502: Stripe failed, and its request id when it gave one (quote it to support)."""

    detail = serializers.CharField()
    stripe_request_id = serializers.CharField(allow_null=True)


class ValidationErrorSerializer(serializers.Serializer[Any]):
    """A 400: DRF's field-error shape, or `{"detail": "..."}` (see the extension below)."""


class ValidationErrorSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """Field errors are keyed by the caller's own field names, so no fixed properties describe them."""

    target_class = "apps.common.schema.ValidationErrorSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        messages = {"type": "array", "items": {"type": "string"}}
        return {
            "type": "object",
            "description": (
                'Either `{"detail": "..."}` or DRF\'s field errors: each field that is wrong maps to a list of '
                "messages; nested objects map to their own field errors, list items are keyed by their index, and "
                "errors of the whole object are under `non_field_errors`."
            ),
            "properties": {"detail": {"type": "string"}, "non_field_errors": messages},
            "additionalProperties": {},
            "example": {"user_id": ["This field is required."], "reason": ["Not a valid string."]},
        }


_DEFAULT_ANSWERS: dict[str, tuple[type[serializers.Serializer[Any]], str]] = {
    "400": (
        ValidationErrorSerializer,
        "Invalid input: field errors naming what is wrong, or `detail` (also a NUL byte in the path or the query).",
    ),
    "401": (ErrorSerializer, "Missing, unknown, revoked or inactive API key."),
    "403": (ErrorSerializer, "Outside the key's scopes, or `Project ID does not match`."),
    "404": (ErrorSerializer, "No such object in your project (another project's object is a 404 too)."),
    "409": (ErrorSerializer, "The Idempotency-Key was used with another request, or its first request is running."),
    "413": (ErrorSerializer, "The body is larger than the limit (2.5 MB)."),
    "415": (ErrorSerializer, "The body is not `application/json`."),
    "429": (ErrorSerializer, "Rate limited: retry after `Retry-After` seconds."),
    "502": (StripeErrorSerializer, "Stripe failed or could not be reached; retry later."),
}


class AutoSchema(SpectacularAutoSchema):
    def _get_serializer_name(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> str:
        name: str = super()._get_serializer_name(serializer, direction, bypass_extensions)
        qualname = type(serializer).__qualname__
        if "." in qualname and name.startswith(("Input", "Output")):
            owner = qualname.split(".")[0].removesuffix("Api")
            return owner + name
        return name

    def _honours_idempotency_key(self) -> bool:
        return honours_idempotency_key(getattr(self.view, self.method.lower(), None))

    def _takes_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None

    def _common_answers(self) -> list[str]:
        codes = []
        if self.view.authentication_classes:
            codes += ["400", "401", "403", "429"]
        if "{" in self.path:
            codes.append("404")
        if self._honours_idempotency_key():
            codes.append("409")
        if self._takes_body():
            codes += ["400", "413", "415"]
        if getattr(self.view, "calls_stripe", False):
            codes.append("502")
        return sorted(set(codes))

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code in self._common_answers():
            if code not in responses:
                serializer, description = _DEFAULT_ANSWERS[code]
                responses[code] = self._error_answer(serializer, description, code, direction)
        for code, answer in list(responses.items()):
            if code in _DEFAULT_ANSWERS and "content" not in answer:
                serializer, _ = _DEFAULT_ANSWERS[code]
                responses[code] = self._error_answer(serializer, answer["description"], code, direction)
        return dict(sorted(responses.items()))

    def _error_answer(
        self, serializer: type[serializers.Serializer[Any]], description: str, code: str, direction: Any
    ) -> dict[str, Any]:
        answer = OpenApiResponse(response=serializer, description=description)
        return dict(self._get_response_for_code(answer, code, direction=direction))  # type: ignore[no-untyped-call]

    def get_override_parameters(self) -> list[Any]:
        parameters: list[Any] = list(super().get_override_parameters())
        if self._honours_idempotency_key():
            parameters.append(
                OpenApiParameter(
                    IDEMPOTENCY_HEADER,
                    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
                    OpenApiParameter.HEADER,
                    description=(
                        "Optional; makes a retry safe. The same key with the same body replays the first answer "
                        "(with `Idempotent-Replayed: true`) for 24 hours; with another body it is a 409. "
                        "1 to 255 printable ASCII characters, such as a UUID."
                    ),
                )
            )
        return parameters


# Query parameters of every list (apps/common/pagination.py, API.md's "Lists").
LIMIT_PARAMETER = OpenApiParameter(
    "limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, description="Page size: 1 to 200."
)
CURSOR_PARAMETER = OpenApiParameter(
    "cursor",
    {"type": "string", "minLength": 1},
    description="`next_cursor` of the previous page, as it was given; omit it for the first page.",
)


# --- The Stripe webhook (a plain Django view, so drf-spectacular does not see it) ----------------

_STRIPE_EVENT_EXAMPLE = {
    "id": "evt_1PgafmB7WZ01zgkW",
    "object": "event",
    "type": "customer.subscription.updated",
    "created": 1795000000,
    "api_version": settings.STRIPE_API_VERSION,  # the pinned version, written once (settings)
    "livemode": False,
    "data": {"object": {"id": "sub_1PgafmB7WZ01zgkW", "object": "subscription", "status": "active"}},
}


def _error_ref(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _webhook_operation(operation_id: str, *, alias_of: str | None) -> dict[str, Any]:
    description = (
        "Stripe calls this with each event of our webhook endpoint; micro-apps never do. It needs no API key: "
        "the `Stripe-Signature` header (HMAC-SHA256 of `<t>.<body>` under one of STRIPE_WEBHOOK_SECRETS) is "
        "the authentication, and its timestamp must be within the tolerance (300 s). A verified event is stored "
        "in the ledger and processed by a worker; the answer does not wait for processing. Events without "
        "`created` (hand-made test events) are stamped with the time of receipt."
    )
    if alias_of:
        description += f" The same endpoint as `POST {alias_of}` (the seed documents' path)."
    return {
        "operationId": operation_id,
        "summary": "Receive a signed Stripe event (called by Stripe)",
        "description": description,
        "tags": ["webhooks"],
        "security": [],
        "parameters": [
            {
                "in": "header",
                "name": "Stripe-Signature",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
                "description": "`t=<unix seconds>,v1=<hex signature>` (several `v1` during a secret rotation).",
                "example": "t=1795000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/StripeEvent"},
                    "examples": {"SubscriptionUpdated": {"value": _STRIPE_EVENT_EXAMPLE}},
                }
            },
        },
        "responses": {
            "200": {
                "description": "The event is durably in the ledger (a duplicate delivery also gets 200).",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/StripeWebhookAck"},
                        "examples": {
                            "Stored": {"value": {"received": True, "duplicate": False}},
                            "Duplicate": {"value": {"received": True, "duplicate": True}},
                        },
                    }
                },
            },
            "400": _error_ref(
                "A missing or bad signature, a timestamp outside the tolerance, or a body that is not a Stripe "
                "event. Nothing is stored as valid and nothing is processed."
            ),
            "413": _error_ref("The body is larger than the limit (2.5 MB)."),
            "503": _error_ref("The event could not be stored; Stripe retries it."),
        },
    }


_WEBHOOK_COMPONENTS: dict[str, Any] = {
    "StripeEvent": {
        "type": "object",
        "description": "A Stripe event as Stripe sends it; fields beyond these are stored as received.",
        "properties": {
            "id": {"type": "string", "pattern": "^evt_", "maxLength": 255},
            "type": {"type": "string", "minLength": 1, "maxLength": 128},
            "created": {"type": "integer", "minimum": 0},
            "api_version": {"type": "string"},
            "livemode": {"type": "boolean"},
            "data": {
                "type": "object",
                "properties": {"object": {"type": "object"}},
                "required": ["object"],
            },
        },
        "required": ["id", "type", "data"],
    },
    "StripeWebhookAck": {
        "type": "object",
        "properties": {"received": {"type": "boolean"}, "duplicate": {"type": "boolean"}},
        "required": ["received", "duplicate"],
    },
}


def _webhook_paths() -> list[str]:
    """Every URL routed to the Stripe webhook view, as OpenAPI paths (the alias too, once it exists)."""
    from apps.webhooks.receive import stripe_webhook

    found: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and pattern.callback is stripe_webhook:
                found.append("/" + prefix + str(pattern.pattern))

    walk(get_resolver().url_patterns, "")
    return found


def add_stripe_webhook(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """A POSTPROCESSING_HOOK: documents the webhook under each of its paths."""
    paths = _webhook_paths()
    canonical = "/api/v1/webhooks/stripe" if "/api/v1/webhooks/stripe" in paths else (paths[0] if paths else None)
    for path in paths:
        slug = re.sub(r"[^a-z0-9]+", "_", path.removeprefix("/api/v1/")).strip("_")
        alias_of = canonical if path != canonical else None
        result["paths"][path] = {"post": _webhook_operation(f"{slug}_receive", alias_of=alias_of)}
    if paths:
        result.setdefault("components", {}).setdefault("schemas", {}).update(_WEBHOOK_COMPONENTS)
    return result


def add_retry_after(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """A POSTPROCESSING_HOOK: every 429 carries `Retry-After` (drf-spectacular has no response headers)."""
    for item in result["paths"].values():
        for operation in item.values():
            answer = operation.get("responses", {}).get("429")
            if answer is not None:
                answer["headers"] = {
                    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}
                }
    return result


def add_location_to_accepted(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """A POSTPROCESSING_HOOK: a 202 that starts a run (long work handed to a worker, whose body has the
    run's `url`) carries that URL in `Location`. A 202 without a run (a notification replay: deliveries
    queued, nothing to poll) has no such header."""
    schemas = result.get("components", {}).get("schemas", {})
    for item in result["paths"].values():
        for operation in item.values():
            answer = operation.get("responses", {}).get("202")
            if answer is not None and _has_url(answer, schemas):
                answer["headers"] = {
                    "Location": {
                        "schema": {"type": "string"},
                        "description": "The run's URL (also its `url`): GET it until its `status` is final.",
                    }
                }
    return result


def _has_url(answer: dict[str, Any], schemas: dict[str, Any]) -> bool:
    """Whether a response's JSON body (its schema, followed through one $ref) has a `url` property."""
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = schemas.get(ref.rsplit("/", 1)[1], {})
    return "url" in schema.get("properties", {})
