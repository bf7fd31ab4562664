"""The reconciliation API (scope ops): start a run, read runs, list and resolve discrepancies.

A run is long work: the POST creates the run row, a worker does it, and the answer is a 202 with the
run and its URL (also in `Location`), which the caller polls until `status` is final, as replays do.
One run per project at a time: a second start is a 409 naming the run in progress and its URL.
Everything is scoped to the key's project: another project's run or discrepancy is a 404.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import client_of, client_project, validated_input
from apps.common.exceptions import Conflict
from apps.common.idempotency import idempotent
from apps.common.pagination import BAD_PAGE_QUERY, ListCursorPagination
from apps.common.query import QueryTextField, instant_text, validated_query
from apps.common.routing import routes_by_method
from apps.common.schema import CURSOR_PARAMETER, LIMIT_PARAMETER
from apps.projects.permissions import CLIENT_PERMISSIONS
from apps.reconciliation import api_examples as examples
from apps.reconciliation import selectors
from apps.reconciliation.models import Discrepancy, ReconciliationRun
from apps.reconciliation.resolutions import RESOLUTIONS, discrepancy_resolve
from apps.reconciliation.runs import RunInProgress
from apps.reconciliation.services import reconciliation_run_request

OPS = ("ops",)
# The Events API reaches back 30 days: an incremental run cannot look further.
DAYS_BACK_MAX = 30
NOTE_MAX = 2000
_BIGINT_MAX = 2**63 - 1

_RUN_ID = OpenApiParameter("run_id", int, OpenApiParameter.PATH, description="The run's `id`.")
_DISCREPANCY_ID = OpenApiParameter("discrepancy_id", int, OpenApiParameter.PATH, description="The discrepancy's `id`.")
_NO_OPS = OpenApiResponse(description="The key lacks the `ops` scope, or `project_id` is not the key's project.")


def run_url(run: ReconciliationRun) -> str:
    return reverse("reconciliation-run-detail", kwargs={"run_id": run.pk})


def discrepancy_url(discrepancy: Discrepancy) -> str:
    return reverse("reconciliation-discrepancy-detail", kwargs={"discrepancy_id": discrepancy.pk})


def _actor(request: Request) -> str:
    client = client_of(request)
    return f"app:{client.app_name} (key {client.key_prefix})"


class RunInProgressConflict(Conflict):
    """The 409 of a start while the project has a run in progress: names it, and where to poll it."""

    def __init__(self, run: ReconciliationRun) -> None:
        self.run = run
        started = instant_text(run.started_at)
        super().__init__(
            f"Run {run.pk} of this project is in progress ({run.mode}, {run.trigger}, started {started}): "
            f"one run per project at a time. Poll {run_url(run)} until its status is final, then start again."
        )

    @property
    def response_extra(self) -> dict[str, Any]:
        return {"run_id": self.run.pk, "run_url": run_url(self.run)}


# --- shapes ------------------------------------------------------------------------------------------


class ReconciliationRunOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="Where to poll this run (GET).")
    project_id = serializers.IntegerField()
    trigger = serializers.ChoiceField(
        choices=ReconciliationRun.Trigger.choices,
        help_text="`scheduled` (beat), `manual` (manage.py reconcile), `api` or `admin`.",
    )
    # A CharField, not a ChoiceField: the enum is named once, by the request's `mode` (checkout
    # sessions have a `mode` too, and drf-spectacular cannot name two shared sets of one field).
    mode = serializers.CharField(
        help_text="`incremental`: what changed in the last `days_back` days (Stripe's events and new objects); "
        "`full`: every object of the project at Stripe.",
    )
    days_back = serializers.IntegerField(allow_null=True, help_text="The incremental window in days; null for full.")
    dry_run = serializers.BooleanField(help_text="Findings are recorded, nothing is corrected.")
    status = serializers.ChoiceField(
        choices=ReconciliationRun.Status.choices,
        help_text="`running` until the worker finished it; then `succeeded` or `failed` (see `error`).",
    )
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    counts = serializers.DictField(
        help_text="Per object type: `checked`, `drift_found`, `corrected`, `left_open`, `errors`."
    )
    summary = serializers.DictField(
        help_text="Totals: `subscriptions_checked`, `purchases_checked`, `drift_detected`, `corrected`, and more."
    )
    cursors = serializers.DictField(help_text="Per object type, where its listing at Stripe got to.")
    stripe_requests = serializers.IntegerField(help_text="Requests made to Stripe, retries included.")
    db_writes = serializers.IntegerField(help_text="Rows written: proportional to the drift, not to the size.")
    duration_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(help_text="Why the run failed (empty otherwise).")
    requested_by = serializers.CharField()
    resumed_from = serializers.IntegerField(
        source="resumed_from_id", allow_null=True, help_text="The dead run whose cursors this one took over."
    )

    def get_url(self, run: ReconciliationRun) -> str:
        return run_url(run)


class DiscrepancyOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="This discrepancy (GET).")
    project_id = serializers.IntegerField()
    run_id = serializers.IntegerField(help_text="The run that detected it.")
    kind = serializers.CharField(help_text="What differs, e.g. `subscription_status`, `charge_amount_refunded`.")
    object_type = serializers.CharField(help_text="Stripe's object type: `subscription`, `charge`, ...")
    stripe_id = serializers.CharField()
    user_id = serializers.CharField(help_text="Your app's user, when known (empty otherwise).")
    local_value = serializers.JSONField(allow_null=True, help_text="What our records say (null: nothing here).")
    stripe_value = serializers.JSONField(allow_null=True, help_text="What Stripe says (null: nothing at Stripe).")
    detected_at = serializers.DateTimeField()
    status = serializers.ChoiceField(
        choices=Discrepancy.Status.choices,
        help_text="`open` (waiting for finance), `auto_resolved` (corrected by a run under the kind's policy), "
        "`resolved` (by a person, or by a run that no longer found it: action `gone`), `ignored` (by a person).",
    )
    resolution_action = serializers.CharField(
        help_text="`accept_stripe`, `keep_local`, `ignore`, `auto` (a run corrected it), `gone` (no longer "
        "found: fixed elsewhere); empty while open."
    )
    resolved_by = serializers.CharField(help_text="The key (`app:...`), the admin user (`admin:...`) or the run.")
    resolved_at = serializers.DateTimeField(allow_null=True)
    note = serializers.CharField()

    def get_url(self, discrepancy: Discrepancy) -> str:
        return discrepancy_url(discrepancy)


class RunInProgressSerializer(serializers.Serializer[Any]):
    """A 409 of a run start: the run in progress (or an Idempotency-Key conflict: `detail` only)."""

    detail = serializers.CharField()
    run_id = serializers.IntegerField(
        required=False, allow_null=True, help_text="The run in progress (null: a process holds the lock)."
    )
    run_url = serializers.CharField(required=False, help_text="Where to poll it.")


# --- runs ----------------------------------------------------------------------------------------------


class ReconciliationRunCreateApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = OPS

    class InputSerializer(serializers.Serializer[Any]):
        project_id = serializers.IntegerField(help_text="Must be your key's project.")
        mode = serializers.ChoiceField(choices=ReconciliationRun.Mode.choices)
        days_back = serializers.IntegerField(
            min_value=1,
            max_value=DAYS_BACK_MAX,
            required=False,
            allow_null=True,
            help_text=f"incremental: how far back to look, 1 to {DAYS_BACK_MAX} days (Stripe's events reach back "
            "30 days); RECONCILIATION_DAYS_BACK (7) when omitted. Not used by a full run.",
            error_messages={
                "max_value": (
                    f"days_back is at most {DAYS_BACK_MAX}: Stripe's Events API reaches back 30 days. "
                    "Run a full reconciliation (mode=full) to compare everything."
                ),
                "min_value": "days_back is at least 1.",
            },
        )
        dry_run = serializers.BooleanField(default=False, help_text="Record findings, correct nothing.")

    @extend_schema(
        operation_id="reconciliation_run_create",
        summary="Start a reconciliation run of your project with Stripe (answers 202; poll the run)",
        description=(
            "Creates a run and hands it to a worker. Answers 202 at once with the run (`status: running`) and its "
            "URL, also in `Location`: GET it until `status` is `succeeded` or `failed`. `incremental` compares what "
            f"changed at Stripe in the last `days_back` days (1 to {DAYS_BACK_MAX}); `full` lists every "
            "subscription, invoice, payment intent and charge of the project. Differences become discrepancies; "
            "those the policy allows are corrected unless `dry_run`. One run per project at a time: while one is "
            "running the answer is 409 with its id and URL."
        ),
        request=InputSerializer,
        responses={
            202: OpenApiResponse(
                response=ReconciliationRunOutputSerializer,
                description="The run was created and handed to a worker. `Location` is its URL.",
            ),
            400: OpenApiResponse(description=f"A bad field: `mode`, or `days_back` outside 1..{DAYS_BACK_MAX}."),
            403: _NO_OPS,
            409: OpenApiResponse(
                response=RunInProgressSerializer,
                description="A run of the project is in progress (`run_id`, `run_url`); or the Idempotency-Key "
                "was used with another body, or its first request is running.",
            ),
        },
        examples=[
            OpenApiExample(
                "Incremental, last 3 days",
                request_only=True,
                value={"project_id": 1, "mode": "incremental", "days_back": 3},
            ),
            OpenApiExample(
                "Full, dry run", request_only=True, value={"project_id": 1, "mode": "full", "dry_run": True}
            ),
            OpenApiExample("Accepted", response_only=True, status_codes=["202"], value=examples.ACCEPTED),
            OpenApiExample(
                "A run is in progress",
                response_only=True,
                status_codes=["409"],
                value={
                    "detail": "Run 13 of this project is in progress (incremental, scheduled, started "
                    "2026-11-23T03:00:00Z): one run per project at a time. Poll "
                    "/api/v1/billing/reconciliation/runs/13 until its status is final, then start again.",
                    "run_id": 13,
                    "run_url": "/api/v1/billing/reconciliation/runs/13",
                },
            ),
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = validated_input(request, self.InputSerializer)
        try:
            run = reconciliation_run_request(
                project=client_project(request),
                mode=values["mode"],
                days_back=values.get("days_back"),
                dry_run=values["dry_run"],
                trigger=ReconciliationRun.Trigger.API,
                requested_by=_actor(request),
            )
        except RunInProgress as exc:
            if exc.run is None:  # held by a process whose run row is gone: its own words
                raise
            raise RunInProgressConflict(exc.run) from exc
        return Response(
            ReconciliationRunOutputSerializer(run).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": run_url(run)},
        )


class ReconciliationRunListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = OPS

    class QuerySerializer(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=ReconciliationRun.Status.choices, required=False, help_text="Only runs in this status."
        )
        mode = serializers.ChoiceField(
            choices=ReconciliationRun.Mode.choices, required=False, help_text="Only runs of this mode."
        )
        trigger = serializers.ChoiceField(
            choices=ReconciliationRun.Trigger.choices, required=False, help_text="Only runs started this way."
        )

    class OutputSerializer(serializers.Serializer[Any]):
        results = ReconciliationRunOutputSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="reconciliation_run_list",
        summary="Your project's reconciliation runs, newest first",
        description="Every trigger's runs (beat, command, API, admin). Paginated (`limit`, `cursor`).",
        parameters=[QuerySerializer, LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description=f"A bad `status`, `mode` or `trigger`; or {BAD_PAGE_QUERY}"),
            403: _NO_OPS,
        },
        examples=[
            OpenApiExample(
                "A running incremental run, a full run, and a run whose process died",
                value={"results": [examples.INCREMENTAL_RUNNING, examples.RUN, examples.FAILED], "next_cursor": None},
            )
        ],
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, self.QuerySerializer)
        runs = selectors.reconciliation_run_list(
            project_id=client_of(request).project_id,
            status=query.get("status"),
            mode=query.get("mode"),
            trigger=query.get("trigger"),
        )
        paginator = ListCursorPagination(ordering="-id")
        page = paginator.paginate_queryset(runs, request, self)
        return paginator.get_paginated_response(ReconciliationRunOutputSerializer(page, many=True).data)


class ReconciliationRunDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = OPS

    @extend_schema(
        operation_id="reconciliation_run_detail",
        summary="One reconciliation run: counts, cursors, Stripe requests (poll until its status is final)",
        description=(
            "`running` while a worker compares; then `succeeded`, or `failed` with `error` (it crashed, or its "
            "process died and the next run or the stale-run sweep marked it failed). The discrepancies it found: "
            "`GET /api/v1/billing/reconciliation/discrepancies?run=<id>`."
        ),
        parameters=[_RUN_ID],
        responses={
            200: ReconciliationRunOutputSerializer,
            403: _NO_OPS,
            404: OpenApiResponse(description="No such run in your project."),
        },
        examples=[
            OpenApiExample("A finished full run", value=examples.RUN),
            OpenApiExample("Still running", value=examples.INCREMENTAL_RUNNING),
            OpenApiExample("Its process died", value=examples.FAILED),
        ],
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = selectors.reconciliation_run_get(project_id=client_of(request).project_id, run_id=run_id)
        if run is None:
            raise Http404
        return Response(ReconciliationRunOutputSerializer(run).data)


reconciliation_runs_route = routes_by_method(ReconciliationRunListApi, ReconciliationRunCreateApi)


# --- discrepancies -------------------------------------------------------------------------------------


class DiscrepancyListApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = OPS

    class QuerySerializer(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=Discrepancy.Status.choices, required=False, help_text="Only discrepancies in this status."
        )
        run = serializers.IntegerField(
            min_value=1, max_value=_BIGINT_MAX, required=False, help_text="Only those this run detected."
        )
        kind = QueryTextField(max_length=64, required=False, help_text="Only this kind.")
        user_id = QueryTextField(max_length=255, required=False, help_text="Only this user's.")

    class OutputSerializer(serializers.Serializer[Any]):
        results = DiscrepancyOutputSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="reconciliation_discrepancy_list",
        summary="Your project's discrepancies with Stripe, newest first",
        description=(
            "What runs found: our value and Stripe's side by side. Filter by `status` (`open` is finance's "
            "queue), `run`, `kind` and `user_id`. Paginated (`limit`, `cursor`)."
        ),
        parameters=[QuerySerializer, LIMIT_PARAMETER, CURSOR_PARAMETER],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description=f"A bad `status`, `run`, `kind` or `user_id`; or {BAD_PAGE_QUERY}"),
            403: _NO_OPS,
        },
        examples=[
            OpenApiExample(
                "One left open for finance, one corrected by the run",
                value={"results": [examples.DISCREPANCY, examples.STATUS_DRIFT], "next_cursor": None},
            )
        ],
    )
    def get(self, request: Request) -> Response:
        query = validated_query(request, self.QuerySerializer)
        found = selectors.discrepancy_list(
            project_id=client_of(request).project_id,
            status=query.get("status"),
            run_id=query.get("run"),
            kind=query.get("kind"),
            user_id=query.get("user_id"),
        )
        paginator = ListCursorPagination(ordering="-id")
        page = paginator.paginate_queryset(found, request, self)
        return paginator.get_paginated_response(DiscrepancyOutputSerializer(page, many=True).data)


class DiscrepancyDetailApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = OPS

    @extend_schema(
        operation_id="reconciliation_discrepancy_detail",
        summary="One discrepancy: our value, Stripe's, and what became of it",
        parameters=[_DISCREPANCY_ID],
        responses={
            200: DiscrepancyOutputSerializer,
            403: _NO_OPS,
            404: OpenApiResponse(description="No such discrepancy in your project."),
        },
        examples=[
            OpenApiExample("Open", value=examples.DISCREPANCY),
            OpenApiExample("Resolved by finance", value=examples.RESOLVED),
        ],
    )
    def get(self, request: Request, discrepancy_id: int) -> Response:
        found = selectors.discrepancy_get(project_id=client_of(request).project_id, discrepancy_id=discrepancy_id)
        if found is None:
            raise Http404
        return Response(DiscrepancyOutputSerializer(found).data)


class DiscrepancyResolveApi(APIView):
    permission_classes = CLIENT_PERMISSIONS
    required_scopes = OPS
    calls_stripe = True  # accept_stripe reads the object from Stripe again

    class InputSerializer(serializers.Serializer[Any]):
        action = serializers.ChoiceField(
            choices=list(RESOLUTIONS),
            help_text="`accept_stripe`: make our records say what Stripe says (through the same services as the "
            "webhooks); `keep_local`: ours are right; `ignore`: not worth acting on.",
        )
        note = serializers.CharField(
            max_length=NOTE_MAX, help_text="Why; required. Stored on the discrepancy and in the audit log."
        )

    @extend_schema(
        operation_id="reconciliation_discrepancy_resolve",
        summary="Resolve an open discrepancy: accept Stripe's side, keep ours, or ignore it (audited)",
        description=(
            "Only an `open` discrepancy can be resolved; any other is a 409 naming its status. `accept_stripe` "
            "reads the object from Stripe again and applies it through the same services as the webhooks "
            "(recomputing the user's entitlements); for a finding of something missing at Stripe it ends or "
            "unlinks ours. Some kinds cannot be accepted (an append-only ledger cannot be rewritten): that is a "
            "409 saying why, and nothing changes. `keep_local` and `ignore` change nothing but the discrepancy "
            "(`resolved` and `ignored`). Of two resolves at once, one wins and the other is a 409. Every "
            "resolution is audited with your key as the actor and the note as the reason."
        ),
        parameters=[_DISCREPANCY_ID],
        request=InputSerializer,
        responses={
            200: DiscrepancyOutputSerializer,
            400: OpenApiResponse(description="A bad `action`, or a missing or blank `note`; or Stripe refused."),
            403: _NO_OPS,
            404: OpenApiResponse(description="No such discrepancy in your project."),
            409: OpenApiResponse(
                description="The discrepancy is not open (the detail names its status), another resolve of it is "
                "under way, or Stripe's side cannot be accepted (the detail says why)."
            ),
        },
        examples=[
            OpenApiExample(
                "Keep ours",
                request_only=True,
                value={
                    "action": "keep_local",
                    "note": "Support moved this customer by hand; our mapping is right (ticket 4412).",
                },
            ),
            OpenApiExample(
                "Accept Stripe's side",
                request_only=True,
                value={"action": "accept_stripe", "note": "Canceled in the dashboard at the customer's request."},
            ),
            OpenApiExample("Resolved", response_only=True, status_codes=["200"], value=examples.RESOLVED),
            OpenApiExample(
                "Already resolved",
                response_only=True,
                status_codes=["409"],
                value={
                    "detail": "Discrepancy 88 is resolved (keep_local by app:ops-console (key a1b2c3d4) at "
                    "2026-11-23T09:30:00Z): only an open discrepancy can be resolved. Nothing changed."
                },
            ),
        ],
    )
    def post(self, request: Request, discrepancy_id: int) -> Response:
        # The body first, then the lookup (as every operation on an id does): a bad body is a 400 for
        # any id, and says nothing about which ids exist.
        values = validated_input(request, self.InputSerializer)
        project_id = client_of(request).project_id
        if selectors.discrepancy_get(project_id=project_id, discrepancy_id=discrepancy_id) is None:
            raise Http404
        resolved = discrepancy_resolve(
            discrepancy_id=discrepancy_id,
            project=client_project(request),
            action=values["action"],
            note=values["note"],
            actor=_actor(request),
        )
        return Response(DiscrepancyOutputSerializer(resolved).data)
