"""One running run per project, dead runs taken over, bad requests refused, stale runs swept."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.utils import timezone

from apps.common.runs import stale_runs_sweep
from apps.reconciliation.models import ReconciliationRun
from apps.reconciliation.runs import InvalidRunRequest, RunInProgress, project_lock
from apps.reconciliation.services import reconcile, reconciliation_run_request
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs handed to a worker (none executes here)."""
    sent: list[int] = []
    monkeypatch.setattr("apps.reconciliation.services._enqueue", lambda run: sent.append(run.pk))
    return sent


def _running(tenant: Tenant, *, age_seconds: int) -> ReconciliationRun:
    run = ReconciliationRun.objects.create(project=tenant.project, trigger="api", mode="full")
    started = timezone.now() - timedelta(seconds=age_seconds)
    ReconciliationRun.objects.filter(pk=run.pk).update(started_at=started, heartbeat_at=started)
    run.refresh_from_db()
    return run


def test_more_than_30_days_back_is_refused_with_a_clear_error(alice: Tenant, enqueued: list[int]) -> None:
    with pytest.raises(InvalidRunRequest) as refused:
        reconcile(project=alice.project, mode="incremental", days_back=31, dry_run=False, trigger="manual")
    assert isinstance(refused.value, ValueError) and refused.value.status_code == 400
    assert "at most 30" in refused.value.detail and "Events API" in refused.value.detail
    with pytest.raises(InvalidRunRequest):
        reconciliation_run_request(project=alice.project, mode="incremental", days_back=45)
    for days_back in (0, -1):
        with pytest.raises(InvalidRunRequest, match="at least 1"):
            reconciliation_run_request(project=alice.project, mode="incremental", days_back=days_back)
    with pytest.raises(InvalidRunRequest, match="mode must be one of"):
        reconciliation_run_request(project=alice.project, mode="everything")
    with pytest.raises(CommandError, match="at most 30"):
        call_command("reconcile", "--project", "alpha", "--days-back", "31")
    assert not ReconciliationRun.objects.exists() and enqueued == []


def test_a_run_takes_the_default_window_and_a_full_run_none(alice: Tenant, enqueued: list[int], settings: Any) -> None:
    settings.RECONCILIATION_DAYS_BACK = 5
    run = reconciliation_run_request(project=alice.project, mode="incremental", requested_by="app:ops (key x)")
    assert (run.days_back, run.trigger, run.status, run.requested_by) == (5, "api", "running", "app:ops (key x)")
    ReconciliationRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert reconciliation_run_request(project=alice.project, mode="full", days_back=12).days_back is None


def test_a_second_trigger_is_told_which_run_is_in_progress(alice: Tenant, bob: Tenant, enqueued: list[int]) -> None:
    first = reconciliation_run_request(project=alice.project, mode="incremental")
    with pytest.raises(RunInProgress) as busy:
        reconciliation_run_request(project=alice.project, mode="full")
    assert busy.value.run == first and busy.value.status_code == 409
    assert f"#{first.pk}" in busy.value.detail and busy.value.response_extra == {"run_id": first.pk}
    # Another project is not held up.
    assert reconciliation_run_request(project=bob.project, mode="full").status == "running"


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_triggers_for_one_project_start_exactly_one_run(alice: Tenant, enqueued: list[int]) -> None:
    barrier = threading.Barrier(2)
    started: list[int] = []
    refused: list[int | None] = []

    def trigger() -> None:
        try:
            barrier.wait()
            run = reconciliation_run_request(project=alice.project, mode="full")
            started.append(run.pk)
        except RunInProgress as busy:
            refused.append(busy.run.pk if busy.run else None)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(started) == 1 and refused == started
    assert list(ReconciliationRun.objects.values_list("pk", flat=True)) == started


def test_a_running_run_whose_lock_is_free_past_the_grace_is_taken_over(alice: Tenant, enqueued: list[int]) -> None:
    dead = _running(alice, age_seconds=121)

    run = reconciliation_run_request(project=alice.project, mode="full")

    dead.refresh_from_db()
    assert dead.status == "failed" and dead.finished_at is not None
    assert dead.error.startswith("Abandoned: its process stopped")
    assert run.status == "running" and run.resumed_from_id == dead.pk


def test_a_young_running_run_is_waiting_for_a_worker_not_dead(alice: Tenant, enqueued: list[int]) -> None:
    queued = _running(alice, age_seconds=30)
    with pytest.raises(RunInProgress) as busy:
        reconciliation_run_request(project=alice.project, mode="full")
    assert busy.value.run == queued


@pytest.mark.requires_postgres
def test_an_old_running_run_whose_lock_is_held_is_alive(alice: Tenant, enqueued: list[int]) -> None:
    alive = _running(alice, age_seconds=3600)
    holding, release = threading.Event(), threading.Event()

    def executor() -> None:  # the run's process, on its own connection
        try:
            with project_lock(alice.project.pk) as acquired:
                assert acquired
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=executor)
    thread.start()
    try:
        assert holding.wait(10)
        with pytest.raises(RunInProgress) as busy:
            reconciliation_run_request(project=alice.project, mode="incremental")
        assert busy.value.run == alive
        # And this process cannot take the lock to run inline either.
        with project_lock(alice.project.pk) as acquired:
            assert not acquired
    finally:
        release.set()
        thread.join()
    alive.refresh_from_db()
    assert alive.status == "running"
    assert connection.vendor == "postgresql"


def test_the_stale_run_sweep_fails_a_run_that_stopped_making_progress_only(alice: Tenant, bob: Tenant) -> None:
    stuck = _running(alice, age_seconds=3600)
    long_but_alive = _running(bob, age_seconds=3600)
    ReconciliationRun.objects.filter(pk=long_but_alive.pk).update(heartbeat_at=timezone.now())

    summary = stale_runs_sweep()

    assert summary["reconciliation.ReconciliationRun"] == 1
    stuck.refresh_from_db()
    long_but_alive.refresh_from_db()
    assert stuck.status == "failed" and "stale-run sweep" in stuck.error
    assert long_but_alive.status == "running"


def test_a_run_given_up_on_while_it_works_stops_at_its_next_checkpoint(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: Any
) -> None:
    from tests.reconciliation.conftest import stripe_customers

    stripe_customers(stripe_client, alice, 7, drift="yes")

    def swept(project: Any, page: int) -> None:
        if page == 2:
            stale_runs_sweep(now=timezone.now() + timedelta(days=1))

    fake.on_page = swept
    (run,) = reconcile(project=alice.project, mode="full", days_back=None, dry_run=False, trigger="manual")

    assert run.status == "failed" and "stale-run sweep" in run.error  # the sweep's word stands
    assert len(fake.pages) == 2 and run.counts["customer"]["checked"] == 6


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_while_a_run_executes_a_second_inline_trigger_is_refused_naming_it(
    alice: Tenant, stripe_sandbox: Any, stripe_client: Any, fake: Any
) -> None:
    from tests.reconciliation.conftest import stripe_customers

    stripe_customers(stripe_client, alice, 4)
    inside, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def hold(project: Any, page: int) -> None:
        if page == 1:
            inside.set()
            release.wait(10)

    fake.on_page = hold

    def first() -> None:
        try:
            (outcome["run"],) = reconcile(
                project=alice.project, mode="full", days_back=None, dry_run=False, trigger="manual"
            )
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(10)
        with pytest.raises(RunInProgress) as busy:
            reconcile(project=alice.project, mode="incremental", days_back=3, dry_run=False, trigger="scheduled")
    finally:
        release.set()
        thread.join()
    assert busy.value.run is not None and busy.value.run.pk == outcome["run"].pk
    assert outcome["run"].status == "succeeded"
    assert ReconciliationRun.objects.count() == 1
