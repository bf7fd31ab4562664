"""Counters incremented in a real Celery worker's pool process reach Prometheus two ways: the worker's
own exporter (WORKER_METRICS_PORT), and the /metrics of a gunicorn started separately that shares its
PROMETHEUS_MULTIPROC_DIR, as any web process on the same host does by default."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from celery import Celery
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from apps.common.models import JobRun
from apps.webhooks.models import ProcessorEvent
from tests.e2e.conftest import eventually
from tests.factories import ProcessorEventFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/1"
JOB = "scheduler-heartbeat"
EVENT_TYPE = "test.counted_in_worker"  # no handler takes it: processed as `ignored`, no Stripe call


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(metrics_dir: Path) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_service.settings",
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # The test environment leaves it unset (each test process keeps its own values): set here,
        # as outside tests the settings' default would.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "WARNING",
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    path = tmp_path / "prometheus-multiproc"
    path.mkdir()
    return path


@pytest.fixture
def queue() -> str:
    # A queue of this test's own: no other worker on that Redis takes these tasks.
    return f"e2e-metrics-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def worker_url(metrics_dir: Path, queue: str) -> Iterator[str]:
    """A prefork worker (the jobs run in a pool process, not in the main one that serves the exporter)."""
    port = _free_port()
    env = {**_env(metrics_dir), "WORKER_METRICS_PORT": str(port), "WORKER_METRICS_ADDR": "127.0.0.1"}
    argv = [sys.executable, "-m", "celery", "-A", "billing_service", "worker", "--pool", "prefork"]
    argv += ["--concurrency", "1", "-Q", queue, "-l", "WARNING"]
    worker = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        eventually(lambda: _get(url) is not None, timeout=60, what="the worker's exporter answering")
        yield url
    finally:
        _stop(worker)


@pytest.fixture
def web_url(metrics_dir: Path) -> Iterator[str]:
    """Another gunicorn of two processes, started on its own as a container's would be."""
    port = _free_port()
    env = {**_env(metrics_dir), "WEB_CONCURRENCY": "2"}
    argv = [sys.executable, "-m", "gunicorn", "--config", "docker/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    web = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        eventually(lambda: _get(url) is not None, timeout=60, what="the web's /metrics answering")
        yield url
    finally:
        _stop(web)


def _get(url: str) -> str | None:
    try:
        response = requests.get(url, timeout=5)
    except (requests.ConnectionError, requests.Timeout):
        # Not listening yet; or, for gunicorn, listening while its workers still load Django.
        return None
    assert response.status_code == 200, response.text[:300]
    return response.text


def _sample(url: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly these labels in the exposition at `url`."""
    text = _get(url) or ""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def _eventually_sample(url: str, expected: float, name: str, **labels: str) -> None:
    eventually(lambda: _sample(url, name, **labels) == expected, timeout=10, what=f"{name}{labels} at {url}")


def test_a_jobs_and_a_webhooks_counters_from_a_pool_process_reach_the_exporter_and_another_web(
    worker_url: str, web_url: str, queue: str
) -> None:
    event = ProcessorEventFactory.create(type=EVENT_TYPE, status=ProcessorEvent.Status.RECEIVED, api_version="")
    sender = Celery(broker=BROKER, set_as_current=False)  # the test process keeps running tasks eagerly
    try:
        # As beat sends it: no arguments, a `scheduled` start.
        sender.send_task("common.scheduler_heartbeat", queue=queue)
        sender.send_task("webhooks.process_event", args=[event.pk], queue=queue)
    finally:
        sender.close()

    run = eventually(
        lambda: JobRun.objects.filter(job=JOB, outcome=JobRun.Outcome.SUCCEEDED).first(),
        timeout=30,
        what="the heartbeat's run recorded",
    )
    eventually(lambda: ProcessorEvent.objects.get(pk=event.pk).status == "ignored", timeout=30, what="event done")
    assert run.trigger == JobRun.Trigger.SCHEDULED
    assert run.finished_at is not None

    for url in (worker_url, web_url):
        # Counted just after the run row is saved: allow the pool process that moment.
        _eventually_sample(url, 1.0, "billing_job_runs_total", job=JOB, trigger="scheduled", outcome="succeeded")
        assert _sample(url, "billing_job_duration_seconds_count", job=JOB) == 1.0
        last_success = _sample(url, "billing_job_last_success_timestamp_seconds", job=JOB)
        assert last_success == pytest.approx(run.finished_at.timestamp(), abs=1.0)
        _eventually_sample(url, 1.0, "billing_webhook_events_processed_total", type=EVENT_TYPE, status="ignored")
