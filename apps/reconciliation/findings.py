"""Recording what a run found: one Discrepancy per difference, corrected when its kind's policy says so.

- An open finding is not duplicated (the partial unique constraint on project, kind and Stripe id):
  seen again, it gets the new values and `last_seen_run`.
- A kind whose policy says auto_correct (apps/reconciliation/policy.py) is corrected at once through
  the comparer (the webhooks' own domain services) unless the run is a dry run; the row is then
  `auto_resolved` with action `auto` and a note of the changes. A correction that raises leaves
  the finding open, with the error in its note, and counts as an error of the run.
- A finding is closed (`resolved`, action `gone`, "no longer found by run #N") when the run compared
  its object again and the difference is no longer there, or, in full mode, when the listing of
  its object type completed and nothing saw it since the pass began.

Writes happen only for drift: rows written and corrections made are the run's `db_writes`. A dry
run writes nothing and corrects nothing; it only counts.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.projects.models import Project
from apps.reconciliation import metrics
from apps.reconciliation.comparers.base import Comparer, Finding
from apps.reconciliation.models import Discrepancy, ReconciliationRun

log = structlog.get_logger("billing.reconciliation")

Status = Discrepancy.Status
Action = Discrepancy.Action
COUNT_NAMES = ("checked", "drift_found", "corrected", "left_open", "errors")
NOTE_LENGTH = 2000


def kind_auto_corrects(kind: str) -> bool:
    """Whether the policy corrects `kind` automatically. A kind the policy does not name is left open."""
    from apps.reconciliation.policy import POLICY  # the comparers' helper owns the table

    policy = POLICY.get(kind)
    if policy is None:
        log.warning("reconciliation_kind_without_policy", kind=kind)
        return False
    return bool(policy.auto_correct)


def _json_value(value: Any) -> Any:
    # JSON columns take JSON types only; a comparer may hand dates or decimals.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


class RunCounts:
    """Per object type: checked, drift_found, corrected, left_open, errors; and the run's totals."""

    def __init__(self) -> None:
        self.by_type: dict[str, Counter[str]] = {}
        self.by_kind: Counter[str] = Counter()
        self.would_correct = 0  # a dry run's findings the policy would have corrected
        self.closed = 0
        self.db_writes = 0

    def add(self, object_type: str, name: str, n: int = 1) -> None:
        self.by_type.setdefault(object_type, Counter())[name] += n

    def total(self, name: str) -> int:
        return sum(counts[name] for counts in self.by_type.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        counts = {t: {name: c[name] for name in COUNT_NAMES} for t, c in sorted(self.by_type.items())}
        counts["total"] = {name: self.total(name) for name in COUNT_NAMES}
        return counts


def _values(value: Any) -> str:
    # JSON text with sorted keys: a finding's values compared with those stored on a discrepancy.
    return json.dumps(value, sort_keys=True, default=str)


def _finding_values(finding: Finding) -> tuple[str, str]:
    return _values(_json_value(finding.local_value)), _values(_json_value(finding.stripe_value))


class FindingRecorder:
    """Records one run's findings, page by page."""

    def __init__(self, run: ReconciliationRun, project: Project, counts: RunCounts) -> None:
        self.run = run
        self.project = project
        self.counts = counts
        self.dry_run = run.dry_run
        self.actor = f"reconciliation run #{run.pk}"

    def record(self, comparer: Comparer, findings: list[Finding], *, compared_ids: set[str]) -> None:
        """Records a page's findings; closes the open ones of the compared objects that are gone."""
        unique: dict[tuple[str, str], Finding] = {}
        for finding in findings:
            unique.setdefault((finding.kind, finding.stripe_id), finding)
        ids = compared_ids | {stripe_id for _, stripe_id in unique}
        # One query per page: the open findings of every object the page is about.
        open_rows = (
            {
                (row.kind, row.stripe_id): row
                for row in Discrepancy.objects.filter(project=self.project, status=Status.OPEN, stripe_id__in=ids)
            }
            if ids
            else {}
        )
        decided = self._decided(ids)
        for key, finding in unique.items():
            if key not in open_rows and (*key, *_finding_values(finding)) in decided:
                continue  # finance kept ours or ignored exactly this difference: not raised again
            self._record_one(comparer, finding, open_rows.get(key))
        if self.dry_run:
            return
        gone = [
            row.pk
            for key, row in open_rows.items()
            if key not in unique and row.stripe_id in compared_ids and row.object_type == comparer.object_type
        ]
        if gone:
            self._close(Discrepancy.objects.filter(pk__in=gone, status=Status.OPEN))

    def _decided(self, ids: set[str]) -> set[tuple[str, str, str, str]]:
        """(kind, stripe id, local value, Stripe value) that finance resolved keep_local or ignored."""
        if not ids:
            return set()
        rows = Discrepancy.objects.filter(project=self.project, stripe_id__in=ids).filter(
            Q(status=Status.IGNORED) | Q(status=Status.RESOLVED, resolution_action=Discrepancy.Action.KEEP_LOCAL)
        )
        return {
            (kind, stripe_id, _values(local), _values(remote))
            for kind, stripe_id, local, remote in rows.values_list("kind", "stripe_id", "local_value", "stripe_value")
        }

    def close_unseen(self, object_type: str, *, since: datetime) -> int:
        """Full mode, a listing complete: open findings of the type that nothing saw since `since`."""
        if self.dry_run:
            return 0
        unseen = Discrepancy.objects.filter(project=self.project, status=Status.OPEN, object_type=object_type).filter(
            Q(last_seen_run__isnull=True, detected_at__lt=since) | Q(last_seen_run__started_at__lt=since)
        )
        return self._close(unseen)

    # -- one finding --
    def _record_one(self, comparer: Comparer, finding: Finding, existing: Discrepancy | None) -> None:
        object_type = finding.object_type
        self.counts.add(object_type, "drift_found")
        self.counts.by_kind[finding.kind] += 1
        auto = kind_auto_corrects(finding.kind)
        if self.dry_run:
            self.counts.add(object_type, "left_open")
            self.counts.would_correct += int(auto)
            return
        metrics.DRIFT.labels(finding.kind).inc()
        note = ""
        if auto:
            try:
                changes = comparer.correct(self.project, finding)
            except SoftTimeLimitExceeded:
                raise  # the run's time is up: it fails and the next run resumes, not this finding
            except Exception as exc:
                # Recorded on the finding, which stays open for finance, and counted: never swallowed.
                note = f"Auto-correction failed in run #{self.run.pk}: {type(exc).__name__}: {exc}"
                self.counts.add(object_type, "errors")
                log.exception(
                    "reconciliation_correction_failed",
                    run_id=self.run.pk,
                    kind=finding.kind,
                    stripe_id=finding.stripe_id,
                )
            else:
                if changes:
                    note = f"Auto-corrected by run #{self.run.pk}: " + "; ".join(changes)
                    self._save(finding, existing, corrected=True, note=note)
                    self.counts.add(object_type, "corrected")
                    self.counts.db_writes += 1  # the correction itself
                    metrics.CORRECTIONS.labels(finding.kind).inc()
                    return
                # Nothing applied: already as Stripe says (a webhook got there first), or a newer
                # event won. Left open: the next run closes it if the difference is gone.
                note = (
                    f"Auto-correction in run #{self.run.pk} changed nothing (already as Stripe says, or a newer "
                    "event was applied); the next run compares again."
                )
        self._save(finding, existing, corrected=False, note=note)
        self.counts.add(object_type, "left_open")

    def _save(self, finding: Finding, existing: Discrepancy | None, *, corrected: bool, note: str) -> None:
        values: dict[str, Any] = {
            "last_seen_run": self.run,
            "user_id": finding.user_id[:255],
            "local_value": _json_value(finding.local_value),
            "stripe_value": _json_value(finding.stripe_value),
        }
        if note:
            values["note"] = note[:NOTE_LENGTH]
        if corrected:
            values.update(
                status=Status.AUTO_RESOLVED,
                resolution_action=Action.AUTO,
                resolved_by=self.actor,
                resolved_at=timezone.now(),
            )
        self.counts.db_writes += 1
        if existing is not None:
            # Guarded by the status: finance may have resolved it while the run was looking.
            Discrepancy.objects.filter(pk=existing.pk, status=Status.OPEN).update(**values)
            return
        try:
            with transaction.atomic():
                Discrepancy.objects.create(
                    project=self.project,
                    run=self.run,
                    kind=finding.kind,
                    object_type=finding.object_type,
                    stripe_id=finding.stripe_id,
                    **values,
                )
        except IntegrityError:
            # An open row appeared since the page's read (another writer): it is the same finding.
            Discrepancy.objects.filter(
                project=self.project, kind=finding.kind, stripe_id=finding.stripe_id, status=Status.OPEN
            ).update(**values)

    def _close(self, rows: Any) -> int:
        closed = int(
            rows.update(
                status=Status.RESOLVED,
                resolution_action=Action.GONE,
                resolved_by=self.actor,
                resolved_at=timezone.now(),
                note=f"No longer found by run #{self.run.pk}.",
            )
        )
        self.counts.closed += closed
        self.counts.db_writes += closed
        return closed
