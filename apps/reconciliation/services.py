"""Reconciliation runs: compare each project's records with its Stripe account, record and correct drift.

One service, `reconcile`, serves every trigger; each project gets a run of its own, executed under the
project's lock (apps/reconciliation/runs.py):
- beat: the periodic jobs `reconcile-daily` (incremental) and `reconcile-weekly` (full) call
  `reconcile_job_body`, through the job mechanism (policy, job lock, one run per tick, JobRun);
- `manage.py reconcile`: every project through the same job (a manual JobRun), or one project
  (or a dry run) directly;
- the API and the admin: `reconciliation_run_request` creates the run and a worker executes it
  (`reconciliation_run_execute`), with the job's policy timeout.

A run lists Stripe page by page through the gateway (listing.py: the rate cap, the project's own
objects, durable cursors), hands each page to the comparers (apps/reconciliation/comparers), and
records their findings (findings.py). Full mode lists every object of each compared type; then the
comparer names our rows Stripe never listed, and open findings nobody saw again are closed.
Incremental mode looks at the window's events and new objects (incremental.py).
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apps.checkout.models import BillingCustomer
from apps.common.stripe_gateway import object_find
from apps.common.stripe_gateway.operations import LISTABLE_TYPES
from apps.entitlements.models import Purchase, SubscriptionRecord
from apps.projects.models import Project
from apps.reconciliation import config, metrics
from apps.reconciliation.comparers.base import Comparer, Finding, ListSpec
from apps.reconciliation.comparers.common import observed_now, observing
from apps.reconciliation.findings import FindingRecorder, RunCounts
from apps.reconciliation.incremental import event_refs, refs_by_type, window_start
from apps.reconciliation.listing import CursorPass, RequestMeter, owned_objects, pages
from apps.reconciliation.models import ReconciliationRun
from apps.reconciliation.runs import (
    RunAbandoned,
    RunInProgress,
    project_lock,
    run_start,
    running_run,
    validated_request,
)

log = structlog.get_logger("billing.reconciliation")

Mode = ReconciliationRun.Mode
Status = ReconciliationRun.Status
Trigger = ReconciliationRun.Trigger
Progress = Callable[[str], None]
ERROR_LENGTH = 4000

# The beat entry whose policy (timeout) and history a run of each mode belongs to.
JOB_FOR_MODE: dict[str, str] = {Mode.INCREMENTAL: "reconcile-daily", Mode.FULL: "reconcile-weekly"}
EVENTS_KEY = "event"
CHANGED_SUFFIX = ":changed"


def registered_comparers() -> list[Comparer]:
    """The comparers, in order (apps/reconciliation/comparers/__init__.py: COMPARERS)."""
    from apps.reconciliation.comparers import COMPARERS

    return list(COMPARERS)


def listing_type(spec: ListSpec, object_type: str) -> str:
    """The Stripe object type a comparer's ListSpec lists (`subscriptions_iter`, `subscription`...)."""
    if spec.operation == "list_page":  # the gateway's generic page function: the comparer's own type
        return listing_type(ListSpec(operation=object_type, params=spec.params), object_type)
    name = spec.operation.removeprefix("stripe_gateway.")
    for suffix in ("_iter", "_page", "_list", ".list"):
        name = name.removesuffix(suffix)
    for candidate in (name, name.removesuffix("s"), object_type):
        if candidate in LISTABLE_TYPES:
            return candidate
    raise ValueError(f"ListSpec operation {spec.operation!r}: not a listable type ({', '.join(LISTABLE_TYPES)})")


def _retrieve_expand(spec: ListSpec) -> list[str]:
    """A list's `expand` (data.x) as a retrieve takes it (x)."""
    expand = spec.params.get("expand") or []
    return [str(path).removeprefix("data.") for path in expand]


def reconcilable_projects() -> list[Project]:
    """Active projects with objects at Stripe: a customer, a subscription or a purchase of ours."""
    has_customer = BillingCustomer.objects.filter(project=OuterRef("pk"), stripe_customer_id__isnull=False)
    has_subscription = SubscriptionRecord.objects.filter(project=OuterRef("pk"))
    has_purchase = Purchase.objects.filter(project=OuterRef("pk"))
    return list(
        Project.objects.filter(active=True)
        .filter(Q(Exists(has_customer)) | Q(Exists(has_subscription)) | Q(Exists(has_purchase)))
        .order_by("slug")
    )


# --- one run ---------------------------------------------------------------------------------------
@dataclass
class _Execution:
    run: ReconciliationRun
    progress: Progress | None = None
    comparers: list[Comparer] = field(default_factory=list)
    counts: RunCounts = field(default_factory=RunCounts)
    meter: RequestMeter = field(default_factory=RequestMeter.for_run)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.project: Project = self.run.project
        # The dead run this one took over, if any (resumed_from then names the pass's previous run).
        self.took_over = self.run.resumed_from_id
        self.recorder = FindingRecorder(self.run, self.project, self.counts)

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(f"[{self.project.slug} run #{self.run.pk} {self.run.mode}] {message}")

    def figures(self) -> dict[str, Any]:
        return {
            "counts": self.counts.as_dict(),
            "stripe_requests": self.meter.requests,
            "db_writes": self.counts.db_writes,
        }

    # -- pages --
    def compare(self, comparer: Comparer, objects: list[dict[str, Any]], *, observed_at: int) -> list[str]:
        """Compares objects of the project with our rows and records the findings; their ids.

        `observed_at` is when the objects were requested from Stripe: a correction applies them as
        of then, so a webhook that arrived while the page was being read stays the newer word.
        """
        if not objects:
            return []
        with observing(observed_at):
            findings = comparer.compare_page(self.project, objects)
        self.counts.add(comparer.object_type, "checked", len(objects))
        ids = [str(obj["id"]) for obj in objects]
        self.recorder.record(comparer, findings, compared_ids=set(ids))
        return ids

    def list_into(self, cursors: CursorPass, key: str, comparer: Comparer, params: dict[str, Any]) -> None:
        spec = comparer.list_spec()
        object_type = listing_type(spec, comparer.object_type)
        for page in pages(
            cursors, key, project_slug=self.project.slug, object_type=object_type, params=params, meter=self.meter
        ):
            ours = owned_objects(self.project, page.objects, object_type=object_type)
            drift_before = self.counts.total("drift_found")
            ids = self.compare(comparer, ours, observed_at=page.observed_at)
            last_id = str(page.objects[-1]["id"]) if page.objects else ""
            cursors.checkpoint(key, last_id=last_id, ids=ids, objects=len(page.objects))
            self.say(
                f"{key}: page {page.number}, {len(page.objects)} listed, {len(ours)} ours, "
                f"{self.counts.total('drift_found') - drift_before} drift"
            )

    # -- full --
    def full(self) -> CursorPass:
        cursors = CursorPass(
            self.run, [c.object_type for c in self.comparers], window_start=None, on_checkpoint=self.figures
        )
        cursors.begin()
        for comparer in self.comparers:
            key = comparer.object_type
            if cursors.state(key).completed_at is not None:
                continue  # done by the run this one resumes
            self.list_into(cursors, key, comparer, dict(comparer.list_spec().params))
            missing = list(comparer.missing_at_stripe(self.project, cursors.seen_ids(key)))
            self.record_missing(cursors, comparer, missing)
            closed = self.recorder.close_unseen(key, since=cursors.pass_started_at)
            cursors.complete(key)
            self.say(f"{key}: listing complete, {len(missing)} missing at Stripe, {closed} gone findings closed")
        cursors.finish()
        return cursors

    def record_missing(self, cursors: CursorPass, comparer: Comparer, missing: list[Finding]) -> None:
        """Records the comparer's "never listed" findings once Stripe confirms the object is gone.

        An object created after its listing passed (or not listed for another reason) is retrieved
        and, if it is the project's, compared like any other: one request per candidate, and there
        are as many candidates as there is drift.
        """
        spec = comparer.list_spec()
        object_type = listing_type(spec, comparer.object_type)
        confirmed: list[Finding] = []
        for number, finding in enumerate(missing, start=1):
            if number % config.page_size() == 0:
                cursors.heartbeat()
            if finding.object_type != comparer.object_type or not finding.stripe_id:
                confirmed.append(finding)
                continue
            observed_at = observed_now()
            found = object_find(
                project_slug=self.project.slug,
                object_type=object_type,
                object_id=finding.stripe_id,
                expand=_retrieve_expand(spec),
                before_request=self.meter,
            )
            if found is not None and not found.get("deleted"):
                ours = owned_objects(self.project, [found], object_type=object_type)
                if ours:
                    self.compare(comparer, ours, observed_at=observed_at)
                    continue
            confirmed.append(finding)
        if confirmed:
            self.recorder.record(comparer, confirmed, compared_ids=set())

    # -- incremental --
    def incremental(self) -> CursorPass:
        assert self.run.days_back is not None
        keys = [EVENTS_KEY]
        for comparer in self.comparers:
            keys += [comparer.object_type, comparer.object_type + CHANGED_SUFFIX]
        cursors = CursorPass(
            self.run,
            keys,
            window_start=window_start(days_back=self.run.days_back, now=self.run.started_at),
            on_checkpoint=self.figures,
        )
        cursors.begin()
        assert cursors.window_start is not None
        created_gte = int(cursors.window_start.timestamp())
        wanted = {listing_type(c.list_spec(), c.object_type) for c in self.comparers}
        if cursors.state(EVENTS_KEY).completed_at is None:
            for page in pages(
                cursors,
                EVENTS_KEY,
                project_slug=self.project.slug,
                object_type="event",
                params={"created": {"gte": created_gte}},
                meter=self.meter,
            ):
                refs = event_refs(self.project, page.objects, wanted=wanted)
                last_id = str(page.objects[-1]["id"]) if page.objects else ""
                cursors.checkpoint(EVENTS_KEY, last_id=last_id, ids=refs, objects=len(page.objects))
                self.say(f"events: page {page.number}, {len(page.objects)} events, {len(refs)} objects changed")
            cursors.complete(EVENTS_KEY)
        changed = refs_by_type(cursors.seen_ids(EVENTS_KEY))
        for comparer in self.comparers:
            key = comparer.object_type
            spec = comparer.list_spec()
            if cursors.state(key).completed_at is None:
                self.list_into(cursors, key, comparer, {**spec.params, "created": {"gte": created_gte}})
                cursors.complete(key)
            changed_key = key + CHANGED_SUFFIX
            if cursors.state(changed_key).completed_at is None:
                ids = changed.get(listing_type(spec, comparer.object_type), set()) - cursors.seen_ids(key)
                self.retrieve_changed(cursors, changed_key, comparer, sorted(ids))
                cursors.complete(changed_key)
        cursors.finish()
        return cursors

    def retrieve_changed(self, cursors: CursorPass, key: str, comparer: Comparer, ids: list[str]) -> None:
        """Retrieves and compares the changed objects, a page's worth at a time, from the cursor on."""
        spec = comparer.list_spec()
        object_type = listing_type(spec, comparer.object_type)
        after = cursors.state(key).starting_after
        todo = [stripe_id for stripe_id in ids if stripe_id > after] if after else ids
        size = config.page_size()
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            observed_at = observed_now()
            objects = []
            for stripe_id in chunk:
                found = object_find(
                    project_slug=self.project.slug,
                    object_type=object_type,
                    object_id=stripe_id,
                    expand=_retrieve_expand(spec),
                    before_request=self.meter,
                )
                # Deleted at Stripe: the full run's missing-object check reports it.
                if found is not None and not found.get("deleted"):
                    objects.append(found)
            ours = owned_objects(self.project, objects, object_type=object_type)
            compared = self.compare(comparer, ours, observed_at=observed_at)
            cursors.checkpoint(key, last_id=chunk[-1], ids=compared, objects=len(chunk))
            self.say(f"{key}: {start + len(chunk)} of {len(todo)} changed objects retrieved")

    # -- the outcome --
    def summary(self, status: str, error: str) -> dict[str, Any]:
        counts = self.counts.as_dict()
        checked = {t: c["checked"] for t, c in counts.items()}
        summary: dict[str, Any] = {
            "run_id": self.run.pk,
            "project": self.project.slug,
            "mode": self.run.mode,
            "days_back": self.run.days_back,
            "dry_run": self.run.dry_run,
            "trigger": self.run.trigger,
            "status": str(status),
            # Seed A's names.
            "subscriptions_checked": checked.get("subscription", 0),
            "purchases_checked": checked.get("payment_intent", 0) + checked.get("charge", 0),
            "drift_detected": counts["total"]["drift_found"],
            "corrected": counts["total"]["corrected"],
            "left_open": counts["total"]["left_open"],
            "errors": counts["total"]["errors"],
            "closed": self.counts.closed,
            "by_kind": dict(sorted(self.counts.by_kind.items())),
            "stripe_requests": self.meter.requests,
            "db_writes": self.counts.db_writes,
            "duration_ms": self._duration_ms(),
            "resumed_from": self.run.resumed_from_id,
            "took_over": self.took_over,
            "error": error,
        }
        if self.run.dry_run:
            summary["would_correct"] = self.counts.would_correct
        return summary

    def _duration_ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)

    def finish(self, status: str, error: str = "", *, abandoned: bool = False) -> None:
        run = self.run
        summary = self.summary(status, error)
        fields: dict[str, Any] = {
            **self.figures(),
            "summary": summary,
            "cursors": run.cursors,
            "duration_ms": summary["duration_ms"],
            "resumed_from_id": run.resumed_from_id,
        }
        if not abandoned:  # else the sweep or a successor already recorded why it gave up on the run
            fields.update(status=status, error=error[:ERROR_LENGTH], finished_at=timezone.now())
        ReconciliationRun.objects.filter(pk=run.pk).update(**fields)
        run.refresh_from_db()
        outcome = "dry_run" if status == Status.SUCCEEDED and run.dry_run else status
        metrics.RUNS.labels(run.mode, outcome).inc()
        if outcome == Status.SUCCEEDED and run.finished_at is not None:
            metrics.LAST_SUCCESS.labels(run.mode).set(run.finished_at.timestamp())
        log_line = log.info if status == Status.SUCCEEDED else log.error
        log_line("reconciliation_run_finished", project_id=self.project.pk, **summary)


def run_execute(
    run: ReconciliationRun, *, comparers: list[Comparer] | None = None, progress: Progress | None = None
) -> ReconciliationRun:
    """Executes a `running` run here; the caller holds the project's lock. The run, finished.

    An error (Stripe unavailable after the gateway's retries, a comparer's bug, the soft time limit)
    fails the run with the error recorded; its cursors keep the pages done, and the next run of the
    mode resumes from them.
    """
    execution = _Execution(run, progress)
    structlog.contextvars.bind_contextvars(reconciliation_run_id=run.pk)
    try:
        execution.comparers = comparers if comparers is not None else registered_comparers()
        if run.mode == Mode.FULL:
            execution.full()
        else:
            execution.incremental()
    except RunAbandoned as exc:
        execution.finish(Status.FAILED, str(exc), abandoned=True)
        log.warning("reconciliation_run_stopped", run_id=run.pk, reason=str(exc))
    except (Exception, KeyboardInterrupt) as exc:
        # Recorded on the run (a KeyboardInterrupt too: an operator stopped the command), then the
        # run is over. A process that dies records nothing: the next trigger takes over its run.
        execution.finish(Status.FAILED, f"{type(exc).__name__}: {exc}")
        log.exception("reconciliation_run_failed", run_id=run.pk)
        if isinstance(exc, KeyboardInterrupt):
            raise
    else:
        execution.say(
            f"done: {execution.counts.total('checked')} checked, {execution.counts.total('drift_found')} drift, "
            f"{execution.counts.total('corrected')} corrected, {execution.counts.total('left_open')} open, "
            f"{execution.meter.requests} Stripe requests"
        )
        execution.finish(Status.SUCCEEDED)
    finally:
        structlog.contextvars.unbind_contextvars("reconciliation_run_id")
    return run


# --- triggers --------------------------------------------------------------------------------------
def reconcile_project(
    *,
    project: Project,
    mode: str,
    days_back: int | None,
    dry_run: bool,
    trigger: str,
    requested_by: str = "",
    progress: Progress | None = None,
    comparers: list[Comparer] | None = None,
) -> ReconciliationRun:
    """One project's run, here and now, under its lock; RunInProgress when one is running."""
    with project_lock(project.pk) as acquired:
        if not acquired:
            latest = running_run(project) or ReconciliationRun.objects.filter(project=project).first()
            raise RunInProgress(latest, project=project)
        run = run_start(
            project=project,
            mode=mode,
            days_back=days_back,
            dry_run=dry_run,
            trigger=trigger,
            requested_by=requested_by,
        )
        return run_execute(run, comparers=comparers, progress=progress)


@dataclass
class Outcome:
    runs: list[ReconciliationRun] = field(default_factory=list)
    in_progress: dict[str, int | None] = field(default_factory=dict)  # project slug -> the running run


def _reconcile_projects(
    projects: list[Project],
    *,
    mode: str,
    days_back: int | None,
    dry_run: bool,
    trigger: str,
    requested_by: str,
    progress: Progress | None,
) -> Outcome:
    outcome = Outcome()
    for project in projects:
        try:
            outcome.runs.append(
                reconcile_project(
                    project=project,
                    mode=mode,
                    days_back=days_back,
                    dry_run=dry_run,
                    trigger=trigger,
                    requested_by=requested_by,
                    progress=progress,
                )
            )
        except RunInProgress as exc:
            # One busy project does not hold up the others; the job's summary names it.
            outcome.in_progress[project.slug] = exc.run.pk if exc.run is not None else None
            log.info("reconciliation_project_busy", project_id=project.pk, detail=exc.detail)
            if progress is not None:
                progress(f"[{project.slug}] skipped: {exc.detail}")
    return outcome


def reconcile(
    *,
    project: Project | None = None,
    mode: str,
    days_back: int | None,
    dry_run: bool,
    trigger: str,
    requested_by: str = "",
    progress: Progress | None = None,
) -> list[ReconciliationRun]:
    """Reconciles `project` (every project with Stripe objects when None): one run per project.

    InvalidRunRequest (a ValueError, 400) for a bad mode or days_back; RunInProgress (409) when the
    one project asked for has a run in progress (with every project, a busy one is skipped).
    """
    days_back = validated_request(mode=mode, days_back=days_back)
    if project is not None:
        return [
            reconcile_project(
                project=project,
                mode=mode,
                days_back=days_back,
                dry_run=dry_run,
                trigger=trigger,
                requested_by=requested_by,
                progress=progress,
            )
        ]
    return _reconcile_projects(
        reconcilable_projects(),
        mode=mode,
        days_back=days_back,
        dry_run=dry_run,
        trigger=trigger,
        requested_by=requested_by,
        progress=progress,
    ).runs


def _enqueue(run: ReconciliationRun) -> None:
    from apps.common.jobs.policy import policy_for
    from apps.common.jobs.task import HARD_LIMIT_GRACE_SECONDS
    from apps.reconciliation.tasks import reconciliation_run_task

    # The time limit of the beat job of the same mode (its policy, editable in the admin).
    timeout = policy_for(JOB_FOR_MODE[run.mode]).timeout_seconds
    reconciliation_run_task.apply_async(
        args=(run.pk,), soft_time_limit=timeout, time_limit=timeout + HARD_LIMIT_GRACE_SECONDS
    )


def reconciliation_run_request(
    *,
    project: Project,
    mode: str,
    days_back: int | None = None,
    dry_run: bool = False,
    trigger: str = Trigger.API,
    requested_by: str = "",
) -> ReconciliationRun:
    """Creates the project's run and hands it to a worker once committed (the API's 202, the admin).

    RunInProgress (409, naming the run) when one is running; InvalidRunRequest (400) for bad values.
    """
    with transaction.atomic():
        run = run_start(
            project=project,
            mode=mode,
            days_back=days_back,
            dry_run=dry_run,
            trigger=trigger,
            requested_by=requested_by,
        )
        # robust: a broker that is down must not turn a created run into a 5xx; the run stays
        # `running`, and the stale-run sweep or the next trigger marks it failed.
        transaction.on_commit(lambda: _enqueue(run), robust=True)
    return run


def reconciliation_run_execute(*, run_id: int, progress: Progress | None = None) -> ReconciliationRun:
    """The worker's part of a requested run: executes it under the project's lock if still running."""
    run = ReconciliationRun.objects.select_related("project").get(pk=run_id)
    with project_lock(run.project_id) as acquired:
        run.refresh_from_db()
        if run.status != Status.RUNNING:
            # Taken for dead and failed while it waited in the queue: nothing to do.
            log.warning("reconciliation_run_not_running", run_id=run.pk, status=run.status)
            return run
        if not acquired:
            ReconciliationRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
                status=Status.FAILED,
                finished_at=timezone.now(),
                error="Another process holds this project's reconciliation lock; start a new run later.",
            )
            metrics.RUNS.labels(run.mode, Status.FAILED).inc()
            run.refresh_from_db()
            return run
        return run_execute(run, progress=progress)


# --- the periodic jobs -----------------------------------------------------------------------------
class ReconciliationJobFailed(Exception):
    """Some project's run failed: the job is recorded failed and retried by its policy."""


def _current_job_run(job: str) -> Any:
    from apps.common.models import JobRun

    # The job's lock is held by this process, so the one `running` row of the job is ours.
    return JobRun.objects.filter(job=job, outcome=JobRun.Outcome.RUNNING).order_by("-started_at").first()


def _retry_since(job_run: Any) -> datetime | None:
    """For a retry: when the first attempt of its chain started (its succeeded projects are done)."""
    from apps.common.models import JobRun

    if job_run is None or job_run.trigger != JobRun.Trigger.RETRY:
        return None
    first = (
        JobRun.objects.filter(job=job_run.job, attempt=1, started_at__lt=job_run.started_at)
        .exclude(outcome=JobRun.Outcome.SKIPPED)
        .order_by("-started_at")
        .first()
    )
    return first.started_at if first is not None else None


def _done_since(project: Project, mode: str, since: datetime) -> bool:
    return ReconciliationRun.objects.filter(
        project=project, mode=mode, dry_run=False, status=Status.SUCCEEDED, started_at__gte=since
    ).exists()


def _requester() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def reconcile_job_body(
    *,
    job: str,
    mode: str,
    days_back: int | None = None,
    requested_by: str = "",
    progress: Progress | None = None,
    runs: list[ReconciliationRun] | None = None,
) -> dict[str, Any]:
    """A periodic job's body: every project, one run each; raises if any failed (the policy retries).

    A retry reconciles only the projects its chain has not yet reconciled successfully. `runs`, when
    given, receives the runs as they finish (the command prints them even when the job fails).
    """
    job_run = _current_job_run(job)
    manual = job_run is not None and job_run.trigger == "manual"
    if not config.enabled() and not manual:  # an operator's "run now" or the command still runs
        return {"enabled": False}
    days_back = validated_request(mode=mode, days_back=days_back)
    since = _retry_since(job_run)
    projects = reconcilable_projects()
    done = [p.slug for p in projects if since is not None and _done_since(p, mode, since)]
    trigger = Trigger.MANUAL if manual else Trigger.SCHEDULED
    outcome = _reconcile_projects(
        [p for p in projects if p.slug not in done],
        mode=mode,
        days_back=days_back,
        dry_run=False,
        trigger=trigger,
        requested_by=requested_by or (job_run.requested_by if job_run is not None else "") or f"job {job}",
        progress=progress,
    )
    if runs is not None:
        runs.extend(outcome.runs)
    failed = [run for run in outcome.runs if run.status != Status.SUCCEEDED]
    if failed:
        raise ReconciliationJobFailed(
            f"{len(failed)} of {len(outcome.runs)} project runs failed: "
            + "; ".join(f"{run.project.slug} run #{run.pk}: {run.error[:120]}" for run in failed)
        )
    return {
        "enabled": True,
        "mode": mode,
        "days_back": days_back,
        "runs": {run.project.slug: run.pk for run in outcome.runs},
        "in_progress": outcome.in_progress,
        "already_done": done,
        "subscriptions_checked": sum(run.summary.get("subscriptions_checked", 0) for run in outcome.runs),
        "purchases_checked": sum(run.summary.get("purchases_checked", 0) for run in outcome.runs),
        "drift_detected": sum(run.summary.get("drift_detected", 0) for run in outcome.runs),
        "corrected": sum(run.summary.get("corrected", 0) for run in outcome.runs),
        "stripe_requests": sum(run.stripe_requests for run in outcome.runs),
    }


def reconcile_from_command(
    *, mode: str, days_back: int | None, progress: Progress, runs: list[ReconciliationRun]
) -> Any:
    """Every project, by hand, through the mode's periodic job: its lock and a manual JobRun."""
    from apps.common.jobs.runner import JobStart, job_execute

    job = JOB_FOR_MODE[mode]
    requested_by = f"manage.py reconcile ({_requester()})"
    start = JobStart(job=job, trigger="manual", requested_by=requested_by)
    return job_execute(
        start,
        lambda: reconcile_job_body(
            job=job, mode=mode, days_back=days_back, requested_by=requested_by, progress=progress, runs=runs
        ),
        retries=False,  # the command reports the failure; nothing would send a retry
    ).run
