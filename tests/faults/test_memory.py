"""Memory: the resident size of a gunicorn worker over 100,000 entitlement checks, and of a Celery
worker over 10,000 events (short form: 10,000 and 1,000), read at every 10% of the run.

Targets (issue 14): at most 150 MB per gunicorn worker and 250 MB for the Celery worker, and no growth
between the second and the third 10%. By then caches, imports, connection pools and the allocator's
arenas have reached their working size, so growth that goes on is a leak. The tolerance is 5 MB:
pymalloc and glibc take memory in arenas (256 KB and up to 64 MB of address space per thread arena,
touched page by page), so a worker's RSS moves by a few MB between two readings without any leak;
a leak of 1 KB per request shows as 5 MB per 10% at the full form's 10,000 checks per 10% split over
two workers, and one of 5 KB per event as 5 MB at the full form's 1,000 events per 10%.

RSS is VmRSS from /proc/<pid>/status of the processes that do the work: gunicorn's workers (not the
master, which serves nothing) and the Celery worker (one process, solo pool: processes.worker_argv()).
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from apps.entitlements.grants import grant_create
from apps.webhooks.models import ProcessorEvent
from tests.conftest import Tenant
from tests.faults.conftest import Service, deliver_all, ledger_drained, payment_effects, payment_events
from tests.faults.processes import rss_mb, wait_until
from tests.faults.report import full_form, record_figure

pytestmark = [pytest.mark.faults, pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

TEST = "Memory"
CHECKS = 100_000 if full_form() else 10_000
EVENTS = 10_000 if full_form() else 1_000
WEB_TARGET_MB = 150
WORKER_TARGET_MB = 250
GROWTH_TOLERANCE_MB = 5
USERS = 50  # checked in turn; the even ones hold a grant
CLIENTS = 4


def _growth(samples: list[float]) -> float:
    """RSS growth between the second and the third 10% (samples[i] is read after (i + 1) * 10%)."""
    return samples[2] - samples[1]


def _checks(port: int, tenant: Tenant, count: int, offset: int) -> int:
    """`count` checks over one keep-alive connection; the number of wrong or non-200 answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    wrong = 0
    try:
        for index in range(offset, offset + count):
            user = index % USERS
            connection.request(
                "GET",
                f"/api/v1/entitlements/check?user_id=mem-{user}&project_id={tenant.project.pk}&feature_code=labs",
                headers={"X-API-Key": tenant.key},
            )
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or json.loads(body)["active"] is not (user % 2 == 0):
                wrong += 1
    finally:
        connection.close()
    return wrong


def test_a_gunicorn_worker_stays_small_over_many_checks(service: Service, labs: Tenant) -> None:
    for user in range(0, USERS, 2):
        grant_create(
            project=labs.project, user_id=f"mem-{user}", feature_code="labs", granted_by="faults", reason="memory"
        )
    web = service.web()
    pids = web.worker_pids()
    assert pids, "gunicorn started no worker"
    record_figure(TEST, "gunicorn workers", len(pids))
    record_figure(TEST, "gunicorn worker RSS at start", max(round(rss_mb(pid), 1) for pid in pids), "MB")
    samples: dict[int, list[float]] = {pid: [] for pid in pids}
    step = CHECKS // 10
    share = step // CLIENTS
    wrong = 0
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for tenth in range(10):
            offsets = [tenth * step + client * share for client in range(CLIENTS)]
            wrong += sum(pool.map(lambda offset: _checks(web.port, labs, share, offset), offsets))
            for pid in pids:
                samples[pid].append(round(rss_mb(pid), 1))
    seconds = time.monotonic() - began
    assert web.worker_pids() == pids, "a gunicorn worker was replaced during the run"
    for number, pid in enumerate(pids):
        record_figure(TEST, f"gunicorn worker {number + 1} RSS at each 10% of {CHECKS} checks", samples[pid], "MB")
    peak = max(max(values) for values in samples.values())
    growth = max(_growth(values) for values in samples.values())
    record_figure(TEST, "gunicorn worker RSS, peak", peak, "MB")
    record_figure(TEST, "gunicorn worker RSS growth, 20% -> 30%", round(growth, 1), "MB")
    record_figure(TEST, "checks per second (4 clients, the machine shared)", round(CHECKS / seconds))
    record_figure(TEST, "wrong answers", wrong)
    assert wrong == 0
    assert peak <= WEB_TARGET_MB
    assert growth <= GROWTH_TOLERANCE_MB, samples


def test_a_celery_worker_stays_small_over_many_events(service: Service, alice: Tenant) -> None:
    prefix = f"mem{int(time.time())}"
    events = payment_events(alice.project.slug, EVENTS, prefix=prefix, created=int(time.time()) - EVENTS - 60)
    web = service.web()
    answers = deliver_all(web.base_url, events, concurrency=8)
    assert all(a.status == 200 for a in answers)

    worker = service.worker()
    processed = ProcessorEvent.objects.filter(status="processed", stripe_event_id__startswith=f"evt_{prefix}_")
    samples: list[float] = []
    began = time.monotonic()
    for tenth in range(1, 11):
        wait_until(
            lambda tenth=tenth: processed.count() >= tenth * EVENTS // 10 or not worker.alive(),  # type: ignore[misc]
            timeout=600 if full_form() else 90,
            interval=0.05,
            what=f"{tenth * 10}% of the events processed",
        )
        assert worker.alive(), worker.log_tail()
        samples.append(round(rss_mb(worker.pid), 1))
    seconds = time.monotonic() - began
    wait_until(lambda: ledger_drained(EVENTS), timeout=30, what="ledger drained")
    record_figure(TEST, f"Celery worker RSS at each 10% of {EVENTS} events", samples, "MB")
    record_figure(TEST, "Celery worker RSS, peak", max(samples), "MB")
    record_figure(TEST, "Celery worker RSS growth, 20% -> 30%", round(_growth(samples), 1), "MB")
    record_figure(TEST, "events per second (one worker process)", round(EVENTS / seconds, 1))
    assert payment_effects(prefix) == ((EVENTS + 1) // 2, EVENTS // 2)  # each event's entry, once
    assert max(samples) <= WORKER_TARGET_MB
    assert _growth(samples) <= GROWTH_TOLERANCE_MB, samples
