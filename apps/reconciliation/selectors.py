"""Reads of reconciliation runs and discrepancies, always within one project (another's is None)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.reconciliation.models import Discrepancy, ReconciliationRun


def reconciliation_run_list(
    *, project_id: int, status: str | None = None, mode: str | None = None, trigger: str | None = None
) -> QuerySet[ReconciliationRun]:
    runs = ReconciliationRun.objects.filter(project_id=project_id)
    if status:
        runs = runs.filter(status=status)
    if mode:
        runs = runs.filter(mode=mode)
    if trigger:
        runs = runs.filter(trigger=trigger)
    return runs


def reconciliation_run_get(*, project_id: int, run_id: int) -> ReconciliationRun | None:
    """A run of this project; None for an unknown id or another project's run."""
    return ReconciliationRun.objects.filter(pk=run_id, project_id=project_id).first()


def reconciliation_run_running(*, project_id: int) -> ReconciliationRun | None:
    """The project's run in progress, if any (at most one: a partial unique constraint)."""
    return ReconciliationRun.objects.filter(project_id=project_id, status=ReconciliationRun.Status.RUNNING).first()


def discrepancy_list(
    *,
    project_id: int,
    status: str | None = None,
    run_id: int | None = None,
    kind: str | None = None,
    user_id: str | None = None,
) -> QuerySet[Discrepancy]:
    """The project's discrepancies; `run_id` selects those a run detected (another project's run: none)."""
    found = Discrepancy.objects.filter(project_id=project_id)
    if status:
        found = found.filter(status=status)
    if run_id is not None:
        found = found.filter(run_id=run_id)
    if kind:
        found = found.filter(kind=kind)
    if user_id:
        found = found.filter(user_id=user_id)
    return found


def discrepancy_get(*, project_id: int, discrepancy_id: int) -> Discrepancy | None:
    """A discrepancy of this project; None for an unknown id or another project's."""
    return Discrepancy.objects.filter(pk=discrepancy_id, project_id=project_id).first()
