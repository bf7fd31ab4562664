"""Listing Stripe for a run: the request rate, which objects are the project's, and durable cursors.

- RequestMeter paces every Stripe request of a run with a token bucket (RECONCILIATION_STRIPE_RPS)
  and counts it. The gateway calls it before every attempt, so its retries (429 after Retry-After,
  5xx) are paced and counted too.
- owned_objects keeps the objects of a page that the webhook router would give to this project
  (apps/webhooks/routing.py, route_object's rules), in two queries per page, not two per object.
- CursorPass holds the run's SyncCursor rows. The listings of one (project, mode) form a pass: every
  listing starts together, each is checkpointed after every page (cursor, the ids the page showed
  and the run's own copy, in one small transaction), and a run that finds its pass unfinished (its
  predecessor died or failed) resumes each listing from its cursor. A dry run keeps its cursors in
  memory only: it neither moves nor resumes the real ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

from apps.checkout.models import BillingCustomer
from apps.common.query import instant_text
from apps.common.stripe_gateway import StripeInvalidRequest, list_page
from apps.projects.models import Project
from apps.reconciliation import config, metrics
from apps.reconciliation.comparers.common import observed_now
from apps.reconciliation.models import ReconciliationRun, SyncCursor, SyncCursorPage
from apps.reconciliation.runs import RunAbandoned
from apps.webhooks.routing import MAX_USER_ID

log = structlog.get_logger("billing.reconciliation")

Status = ReconciliationRun.Status


# --- rate -------------------------------------------------------------------------------------------
class TokenBucket:
    """`rate` tokens per second, at most `rate` (one second's worth) saved up."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Takes a token; the seconds to sleep before using it (0 when one was saved up)."""
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= 1
            return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def acquire(self) -> None:
        wait = self.wait_time()
        if wait > 0:
            time.sleep(wait)


@dataclass
class RequestMeter:
    """Paces and counts a run's Stripe requests (the gateway's `before_request`)."""

    bucket: TokenBucket
    requests: int = 0

    @classmethod
    def for_run(cls) -> RequestMeter:
        return cls(TokenBucket(config.stripe_rps()))

    def __call__(self) -> None:
        self.bucket.acquire()
        self.requests += 1
        metrics.STRIPE_REQUESTS.inc()


# --- which objects are the project's --------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _customer_id(obj: dict[str, Any]) -> str:
    customer = obj.get("customer")
    return _text(customer.get("id")) if isinstance(customer, dict) else _text(customer)


def _metadata_route(obj: dict[str, Any]) -> str:
    """The project slug the object's own metadata names, when route_object would take it."""
    metadata = _metadata(obj)
    slug = _text(metadata.get("project"))
    user_id = _text(metadata.get("user_id")) or _text(obj.get("client_reference_id"))
    return slug if slug and user_id and len(user_id) <= MAX_USER_ID else ""


def owned_objects(project: Project, objects: list[dict[str, Any]], *, object_type: str) -> list[dict[str, Any]]:
    """The objects that belong to `project`, by route_object's rules, in at most two queries.

    route_object: the `project` metadata (with a user) of an existing project first, else the
    project of our customer row for the object's customer. A customer object is also ours when our
    customer row for it is this project's, whatever its metadata says: losing its metadata behind
    our back is drift to report, not a reason to stop looking at it.
    """
    if not objects:
        return []
    slugs = {slug for obj in objects if (slug := _metadata_route(obj))}
    known_slugs = dict(Project.objects.filter(slug__in=slugs).values_list("slug", "pk")) if slugs else {}
    customer_ids = {cid for obj in objects if (cid := _customer_id(obj))}
    if object_type == "customer":
        customer_ids |= {_text(obj.get("id")) for obj in objects}
    customer_ids.discard("")
    customer_projects = (
        dict(
            BillingCustomer.objects.filter(stripe_customer_id__in=customer_ids).values_list(
                "stripe_customer_id", "project_id"
            )
        )
        if customer_ids
        else {}
    )
    owned = []
    for obj in objects:
        slug = _metadata_route(obj)
        owner = known_slugs.get(slug) if slug else None
        if owner is None:
            owner = customer_projects.get(_customer_id(obj))
        if object_type == "customer" and customer_projects.get(_text(obj.get("id"))) == project.pk:
            owner = project.pk
        if owner == project.pk:
            owned.append(obj)
    return owned


# --- cursors ---------------------------------------------------------------------------------------
@dataclass
class CursorState:
    """One listing's position; the durable row's copy (or the only copy in a dry run)."""

    key: str
    starting_after: str = ""
    pages: int = 0
    objects_seen: int = 0
    completed_at: datetime | None = None
    window_start: datetime | None = None
    row_id: int = 0  # the SyncCursor's id (0 in a dry run: no row)
    seen: set[str] = field(default_factory=set)  # this process's pages (a dry run's only record)

    def as_dict(self) -> dict[str, Any]:
        return {
            "starting_after": self.starting_after,
            "pages": self.pages,
            "objects_seen": self.objects_seen,
            "completed_at": instant_text(self.completed_at) if self.completed_at else None,
            "window_start": instant_text(self.window_start) if self.window_start else None,
        }


class CursorPass:
    """The run's listings of one mode: begun together, checkpointed per page, resumed together."""

    def __init__(
        self,
        run: ReconciliationRun,
        keys: list[str],
        *,
        window_start: datetime | None,
        on_checkpoint: Callable[[], dict[str, Any]],
    ) -> None:
        self.run = run
        self.keys = keys
        self.durable = not run.dry_run
        self.requested_window = window_start
        # The run's figures to save with each checkpoint (counts, requests, writes).
        self.on_checkpoint = on_checkpoint
        self.states: dict[str, CursorState] = {}
        self.window_start = window_start
        self.pass_started_at: datetime = run.started_at
        self.resumed_from_id: int | None = None

    # -- begin --
    def begin(self) -> None:
        """Resumes the unfinished pass of the mode, else begins a new one; the run's `resumed_from`
        then names the run whose pass it continues (None: a new pass), so that the pass's start can be
        followed back through it (comparers.common.listing_started_at)."""
        if not self.durable:
            self.states = {key: CursorState(key, window_start=self.window_start) for key in self.keys}
            self.run.resumed_from_id = None
            self._save_run_cursors()
            return
        rows = {
            row.object_type: row
            for row in SyncCursor.objects.filter(project_id=self.run.project_id, mode=self.run.mode)
            if row.object_type in self.keys
        }
        if self._resumable(rows):
            self._resume(rows)
        else:
            self._new_pass()
        self.run.resumed_from_id = self.resumed_from_id
        self._save_run_cursors()

    def _resumable(self, rows: dict[str, SyncCursor]) -> bool:
        unfinished = [row for row in rows.values() if row.completed_at is None and row.pass_started_at is not None]
        if not unfinished:
            return False
        moved = max(row.updated_at for row in rows.values())
        if moved < timezone.now() - timedelta(seconds=config.RESUME_WITHIN_SECONDS):
            return False
        if self.run.mode == ReconciliationRun.Mode.FULL:
            return True
        # An incremental pass keeps its window: resumable while Stripe still has its events, and
        # when it reaches at least as far back as this run asks.
        window = unfinished[0].window_start
        oldest_allowed = timezone.now() - timedelta(days=config.MAX_DAYS_BACK) + timedelta(hours=1)
        requested = self.requested_window
        return window is not None and window >= oldest_allowed and (requested is None or window <= requested)

    def _resume(self, rows: dict[str, SyncCursor]) -> None:
        some = next(row for row in rows.values() if row.completed_at is None and row.pass_started_at is not None)
        assert some.pass_started_at is not None
        self.pass_started_at = some.pass_started_at
        self.window_start = some.window_start
        latest = max(rows.values(), key=lambda row: row.updated_at)
        if latest.run_id is not None and latest.run_id != self.run.pk:
            self.resumed_from_id = latest.run_id
        for key in self.keys:
            row = rows.get(key)
            if row is None or row.pass_started_at != self.pass_started_at:
                # A listing added since the pass began (a new comparer): it joins the pass, from the top.
                row, _ = SyncCursor.objects.update_or_create(
                    project_id=self.run.project_id,
                    object_type=key,
                    mode=self.run.mode,
                    defaults={
                        "run": self.run,
                        "starting_after": "",
                        "pages": 0,
                        "objects_seen": 0,
                        "completed_at": None,
                        "window_start": self.window_start,
                        "pass_started_at": self.pass_started_at,
                    },
                )
                SyncCursorPage.objects.filter(cursor=row).delete()
            self.states[key] = CursorState(
                key,
                starting_after=row.starting_after,
                pages=row.pages,
                objects_seen=row.objects_seen,
                completed_at=row.completed_at,
                window_start=row.window_start,
                row_id=row.pk,
            )
        log.info(
            "reconciliation_pass_resumed",
            run_id=self.run.pk,
            resumed_from=self.resumed_from_id,
            cursors={key: state.as_dict() for key, state in self.states.items()},
        )

    def _new_pass(self) -> None:
        with transaction.atomic():
            for key in self.keys:
                row, _ = SyncCursor.objects.update_or_create(
                    project_id=self.run.project_id,
                    object_type=key,
                    mode=self.run.mode,
                    defaults={
                        "run": self.run,
                        "starting_after": "",
                        "pages": 0,
                        "objects_seen": 0,
                        "completed_at": None,
                        "window_start": self.window_start,
                        "pass_started_at": self.pass_started_at,
                    },
                )
                SyncCursorPage.objects.filter(cursor=row).delete()
                self.states[key] = CursorState(key, window_start=self.window_start, row_id=row.pk)

    # -- progress --
    def state(self, key: str) -> CursorState:
        return self.states[key]

    def checkpoint(self, key: str, *, last_id: str, ids: list[str], objects: int) -> None:
        """After a page: where the listing got to and what it saw, with the run's figures, at once."""
        state = self.states[key]
        state.pages += 1
        state.objects_seen += objects
        if last_id:
            state.starting_after = last_id
        state.seen.update(ids)
        if not self.durable:
            self._save_run_cursors()
            return
        with transaction.atomic():
            self._save_run_cursors()
            SyncCursor.objects.filter(pk=state.row_id).update(
                run=self.run,
                starting_after=state.starting_after,
                pages=state.pages,
                objects_seen=state.objects_seen,
                updated_at=timezone.now(),
            )
            if ids:
                # The page's number is new: the cursor and its pages move in this one transaction.
                SyncCursorPage.objects.create(cursor_id=state.row_id, number=state.pages, stripe_ids=ids)

    def restart(self, key: str) -> None:
        """Starts one listing again from the top (its cursor's object vanished at Stripe)."""
        state = self.states[key]
        state.starting_after, state.pages, state.objects_seen = "", 0, 0
        state.seen.clear()
        if self.durable:
            with transaction.atomic():
                SyncCursor.objects.filter(pk=state.row_id).update(
                    starting_after="", pages=0, objects_seen=0, updated_at=timezone.now()
                )
                SyncCursorPage.objects.filter(cursor_id=state.row_id).delete()

    def complete(self, key: str) -> None:
        state = self.states[key]
        state.completed_at = timezone.now()
        state.starting_after = ""
        if not self.durable:
            self._save_run_cursors()
            return
        with transaction.atomic():
            self._save_run_cursors()
            SyncCursor.objects.filter(pk=state.row_id).update(
                run=self.run, starting_after="", completed_at=state.completed_at, updated_at=timezone.now()
            )

    def finish(self) -> None:
        """The pass is complete: the pages' ids are no longer needed."""
        if self.durable:
            SyncCursorPage.objects.filter(cursor_id__in=[s.row_id for s in self.states.values()]).delete()

    def heartbeat(self) -> None:
        """Long work between two checkpoints still shows the run alive (and still running)."""
        self._save_run_cursors()

    def seen_ids(self, key: str) -> set[str]:
        """Every id the listing's pages saw, its dead predecessors' pages included."""
        state = self.states[key]
        if not self.durable:
            return set(state.seen)
        ids: set[str] = set()
        for page_ids in SyncCursorPage.objects.filter(cursor_id=state.row_id).values_list("stripe_ids", flat=True):
            ids.update(page_ids)
        return ids

    def _save_run_cursors(self) -> None:
        """The run's copy of the cursors and its figures so far; RunAbandoned if it is no longer running."""
        figures = self.on_checkpoint()
        self.run.cursors = {key: state.as_dict() for key, state in self.states.items()}
        self.run.heartbeat_at = timezone.now()
        updated = ReconciliationRun.objects.filter(pk=self.run.pk, status=Status.RUNNING).update(
            cursors=self.run.cursors,
            heartbeat_at=self.run.heartbeat_at,
            resumed_from_id=self.run.resumed_from_id,
            **figures,
        )
        if not updated:
            raise RunAbandoned(f"run #{self.run.pk} is no longer running; stopping")


# --- the page loop ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Page:
    objects: list[dict[str, Any]]
    number: int
    last: bool
    observed_at: int  # when it was requested (comparers/common.py observed_now)


def pages(
    cursors: CursorPass,
    key: str,
    *,
    project_slug: str,
    object_type: str,
    params: dict[str, Any],
    meter: RequestMeter,
) -> Iterator[Page]:
    """The listing's pages from its cursor on. The caller checkpoints each page once it is handled.

    A page that still fails after the gateway's retries (StripeUnavailable) ends the listing with
    that error: the run fails, and the next run resumes from the last checkpoint.
    """
    state = cursors.state(key)
    if state.completed_at is not None:
        return
    limit = config.page_size()
    while True:
        observed_at = observed_now()
        try:
            objects, has_more = list_page(
                project_slug=project_slug,
                object_type=object_type,
                params=params,
                starting_after=state.starting_after or None,
                limit=limit,
                before_request=meter,
            )
        except StripeInvalidRequest as error:
            if state.starting_after and error.param == "starting_after":
                # The object the cursor names is gone at Stripe: list this type again from the top.
                log.warning("reconciliation_cursor_lost", key=key, starting_after=state.starting_after)
                cursors.restart(key)
                continue
            raise
        yield Page(objects, state.pages + 1, last=not has_more or not objects, observed_at=observed_at)
        if not has_more or not objects:
            return
