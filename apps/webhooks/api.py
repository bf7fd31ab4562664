"""POST /api/v1/billing/replays and GET /api/v1/billing/replays/{replay_id} (scope ops).

A replay is long work: the POST creates the run, a worker does it, and the answer is a 202 with the
run and its URL (also in `Location`), which the caller polls until `status` is final.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import client_of, validated_input
from apps.common.idempotency import idempotent
from apps.projects.permissions import CLIENT_PERMISSIONS
from apps.webhooks.models import ReplayRun
from apps.webhooks.replays import MAX_EVENTS, ReplayTooLarge, replay_request
from apps.webhooks.selectors import replay_run_get

_ERRORS = {
    401: OpenApiResponse(description="Missing, unknown, revoked or inactive API key."),
    403: OpenApiResponse(description="The key lacks the `ops` scope."),
}

_PARAMS_EXAMPLE = {"event_ids": ["evt_1PgafmB7WZ01zgkW"], "since": None, "until": None, "types": []}

_RUN_EXAMPLE = {
    "id": 12,
    "url": "/api/v1/billing/replays/12",
    "project_id": 1,
    "requested_by": "app:ops-console (key a1b2c3d4)",
    "reason": "handler fix deployed",
    "dry_run": True,
    "status": "succeeded",
    "params": _PARAMS_EXAMPLE,
    "counts": {"selected": 1, "processed": 1, "ignored": 0, "failed": 0, "skipped": 0},
    "results": [
        {
            "event_id": "evt_1PgafmB7WZ01zgkW",
            "type": "customer.subscription.updated",
            "status": "processed",
            "changes": ["subscription sub_123: status past_due -> active"],
            "note": "",
            "error": "",
        }
    ],
    "error": "",
    "created_at": "2026-11-23T10:00:00Z",
    "finished_at": "2026-11-23T10:00:01Z",
}

_ACCEPTED_EXAMPLE = {
    **_RUN_EXAMPLE,
    "status": "running",
    "counts": {"selected": 1},
    "results": [],
    "finished_at": None,
}

_ABANDONED_EXAMPLE = {
    **_ACCEPTED_EXAMPLE,
    "status": "failed",
    "error": (
        "Abandoned: still running after 900 s (RUN_STALE_AFTER_SECONDS), so its worker died or no worker picked "
        "it up; marked failed by the stale-run sweep. Start a new run."
    ),
    "finished_at": "2026-11-23T10:15:00Z",
}


def replay_url(run: ReplayRun) -> str:
    return reverse("replay-detail", kwargs={"replay_id": run.pk})


class ReplayRunOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="Where to poll this run (GET).")
    project_id = serializers.IntegerField(allow_null=True)
    requested_by = serializers.CharField()
    reason = serializers.CharField()
    dry_run = serializers.BooleanField()
    status = serializers.ChoiceField(
        choices=ReplayRun.Status.choices, help_text="`running` until a worker finished it; then final."
    )
    params = serializers.DictField()
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="`selected` from the start; `processed`, `ignored`, `failed`, `skipped` once finished.",
    )
    results = serializers.ListField(child=serializers.DictField(), help_text="Per event, once finished.")
    error = serializers.CharField(help_text="Why the run failed as a whole (empty otherwise).")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, run: ReplayRun) -> str:
        return replay_url(run)


class ReplayCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("ops",)

    class InputSerializer(serializers.Serializer[Any]):
        event_ids = serializers.ListField(
            child=serializers.RegexField(r"^evt_[A-Za-z0-9_]+$", max_length=255),
            required=False,
            max_length=MAX_EVENTS,
        )
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        types = serializers.ListField(child=serializers.CharField(max_length=128), required=False, max_length=100)
        dry_run = serializers.BooleanField(default=False)
        reason = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not any(attrs.get(name) for name in ("event_ids", "since", "until", "types")):
                raise serializers.ValidationError("Give at least one of event_ids, since, until or types.")
            if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
                raise serializers.ValidationError({"until": ["Must be after since."]})
            return attrs

    @extend_schema(
        operation_id="replay_create",
        summary="Replay stored Stripe events through their handlers (answers 202; poll the run)",
        description=(
            "Starts a run that replays the project's ledger events (by id, or by `created` window and types) "
            "through their handlers, oldest first, in a worker. Answers 202 at once with the run "
            "(`status: running`, `counts.selected`) and its URL, also in the `Location` header: GET it until "
            f"`status` is `succeeded` or `failed`. At most {MAX_EVENTS} events per run; more is a 400. Only "
            "events already routed to your project are eligible. `dry_run` reports what would change and "
            "changes nothing. Every run is audited."
        ),
        request=InputSerializer,
        responses={
            202: OpenApiResponse(
                response=ReplayRunOutputSerializer,
                description="The run was created and handed to a worker. `Location` is its URL.",
            ),
            400: OpenApiResponse(description="No selector, a bad field, or too many matching events."),
            409: OpenApiResponse(description="The Idempotency-Key was used with a different body, or is in flight."),
            **_ERRORS,
        },
        examples=[
            OpenApiExample(
                "Dry-run one event",
                request_only=True,
                value={"event_ids": ["evt_1PgafmB7WZ01zgkW"], "dry_run": True, "reason": "handler fix deployed"},
            ),
            OpenApiExample(
                "Replay a window of subscription events",
                request_only=True,
                value={
                    "since": "2026-11-22T00:00:00Z",
                    "until": "2026-11-23T00:00:00Z",
                    "types": ["customer.subscription.updated"],
                },
            ),
            OpenApiExample("Accepted", response_only=True, status_codes=["202"], value=_ACCEPTED_EXAMPLE),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        client = client_of(request)
        try:
            run = replay_request(
                project_id=client.project_id,
                requested_by=f"app:{client.app_name} (key {client.key_prefix})",
                event_ids=values.get("event_ids"),
                since=values.get("since"),
                until=values.get("until"),
                types=values.get("types"),
                dry_run=values["dry_run"],
                reason=values["reason"],
            )
        except ReplayTooLarge as exc:
            raise exceptions.ValidationError({"detail": str(exc)}) from exc
        return Response(
            ReplayRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED, headers={"Location": replay_url(run)}
        )


class ReplayDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = ("ops",)

    @extend_schema(
        operation_id="replay_detail",
        summary="A replay run with its per-event results (poll until its status is final)",
        description=(
            "`running` while a worker replays it; then `succeeded`, or `failed` when an event failed (see "
            "`results`) or the run itself did (`error`: it crashed, or the stale-run sweep found its worker gone)."
        ),
        responses={200: ReplayRunOutputSerializer, 404: OpenApiResponse(description="No such run here."), **_ERRORS},
        examples=[
            OpenApiExample("A finished dry run", value=_RUN_EXAMPLE),
            OpenApiExample("Still running", value=_ACCEPTED_EXAMPLE),
            OpenApiExample("Abandoned by its worker", value=_ABANDONED_EXAMPLE),
        ],
    )
    def get(self, request: Request, replay_id: int) -> Response:
        run = replay_run_get(project_id=client_of(request).project_id, replay_id=replay_id)
        if run is None:
            raise Http404
        return Response(ReplayRunOutputSerializer(run).data)
