"""The hosted-session sweep: set-based expiry and abandonment, a dry run that writes nothing, counts
that come from the UPDATEs (so two sweepers never count a row twice), its command, task and metrics."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.checkout.models import CheckoutSession, Invoice
from apps.common.models import JobRun
from apps.recovery import sweeps
from apps.recovery.sweeps import sweep_hosted_sessions
from apps.recovery.tasks import sweep_hosted_sessions as sweep_task
from billing_service.beat_schedule import scheduled_task
from tests.factories import CheckoutSessionFactory, InvoiceFactory
from tests.recovery.conftest import invoice_session

pytestmark = pytest.mark.django_db

Status = CheckoutSession.Status


def _status(session: CheckoutSession) -> str:
    session.refresh_from_db()
    return session.status


def test_open_sessions_past_their_expiry_become_expired_at_the_sweeps_time() -> None:
    now = timezone.now()
    past = invoice_session(status=Status.OPEN, expires_at=now - timedelta(seconds=1))
    future = invoice_session(status=Status.OPEN, expires_at=now + timedelta(minutes=5))
    # A subscription checkout (no invoice) is left to Stripe's own checkout.session.expired event.
    price_checkout = CheckoutSessionFactory.create(expires_at=now - timedelta(hours=1))
    before = past.updated_at

    counts = sweep_hosted_sessions(now=now)

    assert counts == {"expired": 1, "abandoned": 0, "dry_run": False}
    past.refresh_from_db()
    assert (past.status, past.expired_at, past.abandoned_at) == (Status.EXPIRED, now, None)
    assert past.updated_at == now != before  # the optimistic-lock token moves with the write
    assert _status(future) == Status.OPEN
    assert _status(price_checkout) == Status.OPEN


def test_expired_sessions_of_open_invoices_become_abandoned_after_the_delay(settings: Any) -> None:
    settings.HOSTED_SESSION_ABANDON_AFTER_SECONDS = 3600
    now = timezone.now()
    long_ago = now - timedelta(seconds=3601)
    abandoned = invoice_session(status=Status.EXPIRED, expired_at=long_ago)
    recent = invoice_session(status=Status.EXPIRED, expired_at=now - timedelta(seconds=3599))
    settled = {
        status: invoice_session(status=Status.EXPIRED, expired_at=long_ago, invoice_status=status)
        for status in (Invoice.Status.PAID, Invoice.Status.VOID, Invoice.Status.UNCOLLECTIBLE)
    }

    counts = sweep_hosted_sessions(now=now)

    assert counts == {"expired": 0, "abandoned": 1, "dry_run": False}
    abandoned.refresh_from_db()
    assert (abandoned.status, abandoned.abandoned_at, abandoned.expired_at) == (Status.ABANDONED, now, long_ago)
    assert _status(recent) == Status.EXPIRED
    assert {status: _status(session) for status, session in settled.items()} == dict.fromkeys(settled, Status.EXPIRED)


def test_a_session_expired_by_a_sweep_is_abandoned_by_a_later_one_not_the_same(settings: Any) -> None:
    settings.HOSTED_SESSION_ABANDON_AFTER_SECONDS = 3600
    now = timezone.now()
    # Expired at Stripe days ago, but we only learn it now: the abandon delay counts from now.
    session = invoice_session(status=Status.OPEN, expires_at=now - timedelta(days=3))

    assert sweep_hosted_sessions(now=now) == {"expired": 1, "abandoned": 0, "dry_run": False}
    assert sweep_hosted_sessions(now=now + timedelta(seconds=3599))["abandoned"] == 0
    assert sweep_hosted_sessions(now=now + timedelta(seconds=3601))["abandoned"] == 1
    assert _status(session) == Status.ABANDONED


def test_a_dry_run_counts_what_a_sweep_would_change_and_writes_nothing(settings: Any) -> None:
    settings.HOSTED_SESSION_ABANDON_AFTER_SECONDS = 3600
    now = timezone.now()
    for _ in range(3):
        invoice_session(status=Status.OPEN, expires_at=now - timedelta(minutes=1))
    for _ in range(2):
        invoice_session(status=Status.EXPIRED, expired_at=now - timedelta(hours=2))
    snapshot = list(CheckoutSession.objects.order_by("pk").values())

    dry = sweep_hosted_sessions(now=now, dry_run=True)

    assert dry == {"expired": 3, "abandoned": 2, "dry_run": True}
    assert list(CheckoutSession.objects.order_by("pk").values()) == snapshot
    real = sweep_hosted_sessions(now=now)
    assert (real["expired"], real["abandoned"]) == (dry["expired"], dry["abandoned"])


def test_counts_are_the_rows_changed_and_a_second_sweep_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of 2: five rows take three UPDATEs, and the counts still add up to the rows changed.
    monkeypatch.setattr(sweeps, "BATCH_SIZE", 2)
    now = timezone.now()
    for _ in range(5):
        invoice_session(status=Status.OPEN, expires_at=now - timedelta(minutes=1))
    progress: list[tuple[str, int]] = []

    first = sweep_hosted_sessions(now=now, progress=lambda step, so_far: progress.append((step, so_far)))

    assert first["expired"] == 5 == CheckoutSession.objects.filter(status=Status.EXPIRED, expired_at=now).count()
    assert progress == [("expired", 2), ("expired", 4), ("expired", 5)]
    assert sweep_hosted_sessions(now=now)["expired"] == 0


def test_the_sweep_is_counted_in_prometheus() -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("billing_recovery_sweeps_total", outcome="succeeded"),
        value("billing_recovery_sweeps_total", outcome="dry_run"),
        value("billing_hosted_sessions_expired_total"),
        value("billing_hosted_sessions_abandoned_total"),
    )
    now = timezone.now()
    invoice_session(status=Status.OPEN, expires_at=now - timedelta(minutes=1))
    invoice_session(status=Status.EXPIRED, expired_at=now - timedelta(days=1))
    sweep_hosted_sessions(now=now, dry_run=True)
    sweep_hosted_sessions(now=now)

    after = (
        value("billing_recovery_sweeps_total", outcome="succeeded"),
        value("billing_recovery_sweeps_total", outcome="dry_run"),
        value("billing_hosted_sessions_expired_total"),
        value("billing_hosted_sessions_abandoned_total"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 1]


# --- the command, the beat entry and the task -----------------------------------------------------------


def _json_line(output: str) -> dict[str, Any]:
    line = next(line for line in reversed(output.splitlines()) if line.startswith("{"))
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_the_command_dry_run_prints_progress_and_a_json_summary_and_writes_nothing() -> None:
    session = invoice_session(status=Status.OPEN, expires_at=timezone.now() - timedelta(minutes=1))
    out = StringIO()

    call_command("sweep_hosted_sessions", "--dry-run", stdout=out)

    text = out.getvalue()
    assert "dry run: nothing is written" in text
    assert "  expired: 1 (would be changed)" in text
    assert _json_line(text) == {"dry_run": True, "expired": 1, "abandoned": 0}
    assert _status(session) == Status.OPEN
    assert not JobRun.objects.exists()  # read-only: no job run, no lock


def test_the_command_sweeps_through_the_job_and_prints_a_json_summary() -> None:
    session = invoice_session(status=Status.OPEN, expires_at=timezone.now() - timedelta(minutes=1))
    out = StringIO()

    call_command("sweep_hosted_sessions", stdout=out)

    assert _json_line(out.getvalue()) == {"dry_run": False, "expired": 1, "abandoned": 0}
    assert _status(session) == Status.EXPIRED
    run = JobRun.objects.get(job="sweep-hosted-sessions")
    assert (run.trigger, run.outcome, run.summary) == ("manual", "succeeded", {"expired": 1, "abandoned": 0})


def test_beat_sweeps_every_minute_through_the_periodic_job() -> None:
    entry = scheduled_task("sweep-hosted-sessions")
    assert (entry.task, entry.every_seconds) == ("recovery.sweep_hosted_sessions", 60)
    invoice_session(status=Status.OPEN, expires_at=timezone.now() - timedelta(minutes=1))

    result = sweep_task.delay().get()

    assert result["outcome"] == "succeeded"
    assert result["summary"] == {"expired": 1, "abandoned": 0}
    assert JobRun.objects.get(pk=result["run_id"]).trigger == "scheduled"


# --- two sweepers at once -------------------------------------------------------------------------------


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_count_each_row_once(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.HOSTED_SESSION_ABANDON_AFTER_SECONDS = 3600
    # Small batches, so that the two sweepers' UPDATEs interleave over the same rows many times.
    monkeypatch.setattr(sweeps, "BATCH_SIZE", 50)
    now = timezone.now()
    invoice = InvoiceFactory.create(status=Invoice.Status.OPEN)
    rows = [
        CheckoutSession(
            project_id=invoice.project_id,
            customer_id=invoice.customer_id,
            user_id=invoice.user_id,
            invoice=invoice,
            mode=CheckoutSession.Mode.PAYMENT,
            success_url="https://example.invalid/s",
            cancel_url="https://example.invalid/c",
            status=Status.OPEN if n % 2 else Status.EXPIRED,
            expires_at=now - timedelta(hours=3),
            expired_at=None if n % 2 else now - timedelta(hours=2),
        )
        for n in range(1200)
    ]
    CheckoutSession.objects.bulk_create(rows)
    barrier = threading.Barrier(2)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def sweeper() -> None:
        try:
            barrier.wait(10)
            results.append(dict(sweep_hosted_sessions(now=now)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sum(r["expired"] for r in results) == 600 == CheckoutSession.objects.filter(expired_at=now).count()
    abandoned = CheckoutSession.objects.filter(status=Status.ABANDONED).count()
    assert sum(r["abandoned"] for r in results) == 600 == abandoned
    assert CheckoutSession.objects.filter(status=Status.OPEN).count() == 0
