"""Periodic jobs with real processes: two beats side by side, and a worker SIGKILLed in the middle of a job.

The heartbeat job is the subject: its effect (Heartbeat.beats, one per run) can be counted against its
run rows. Its interval is shortened to 2 s so that several ticks fit in seconds; a tick is then the
2 s slot of the epoch in which the message was sent (apps/common/jobs/ticks.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from celery import Celery
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from kombu import Connection

from apps.common.jobs.lock import job_lock_held
from apps.common.jobs.task import scheduled_start_kwargs
from apps.common.jobs.ticks import tick_of
from apps.common.models import Heartbeat, JobRun
from tests.e2e.conftest import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/5"
JOB = "scheduler-heartbeat"
TASK = "common.scheduler_heartbeat"
EVERY = 2  # seconds: the heartbeat's interval here, and so the length of its ticks

Outcome = JobRun.Outcome
Launch = Callable[[str, list[str]], subprocess.Popen[bytes]]


def _env() -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_service.settings",
        "DJANGO_ENV": "test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def launch(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Launch]:
    """Starts `celery -A billing_service ARGS`, its output in tmp_path/NAME.log. Whatever is still
    running at the end is terminated, then killed: only the processes started here."""
    started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "celery", "-A", "billing_service", *args]
        with (tmp_path / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        started.append((name, process))
        return process

    try:
        yield start
    finally:
        for _, process in started:
            if process.poll() is None:
                process.terminate()
        for name, process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            # Shown by pytest when the test failed.
            output = (tmp_path / f"{name}.log").read_text(errors="replace")[-2000:]
            request.node.add_report_section("teardown", f"{name} (exit {process.returncode})", output)


def _unacked(queue: str) -> dict[str, dict[str, Any]]:
    """Messages of `queue` a worker took and never acknowledged, by delivery tag (kombu's Redis layout)."""
    found = {}
    stored: dict[bytes, bytes] = redis.Redis.from_url(BROKER).hgetall("unacked")  # type: ignore[assignment]
    for tag, entry in stored.items():
        message, _exchange, routing_key = json.loads(entry)
        if routing_key == queue:
            found[tag.decode()] = message
    return found


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue of this test's own (NAME, and NAME-2 if needed): no other worker on the broker takes
    its messages. Removed afterwards, with its bindings and any message a killed worker left."""
    name = f"e2e-jobs-{uuid.uuid4().hex[:8]}"
    yield name
    r = redis.Redis.from_url(BROKER)
    for queue_name in (name, f"{name}-2"):
        for tag in _unacked(queue_name):
            r.hdel("unacked", tag)
            r.zrem("unacked_index", tag)
    for key in r.scan_iter(match=f"*{name}*"):
        r.delete(key)


@pytest.fixture
def sender() -> Iterator[Celery]:
    # Not made current: the test process keeps running tasks eagerly.
    app = Celery(broker=BROKER, set_as_current=False)
    yield app
    app.close()


def _heartbeat_alone_every_two_seconds(queue: str, *, enabled: bool = True) -> PeriodicTask:
    """The installed schedule with the heartbeat every 2 s (to `queue`) and every other job disabled."""
    call_command("install_beat_schedule", stdout=open(os.devnull, "w"))  # noqa: SIM115
    PeriodicTask.objects.exclude(name=JOB).update(enabled=False)
    task = PeriodicTask.objects.get(name=JOB)
    task.interval, _ = IntervalSchedule.objects.get_or_create(every=EVERY, period=IntervalSchedule.SECONDS)
    task.queue = queue
    task.enabled = enabled
    task.save()
    Heartbeat.objects.create(name="worker", last_seen_at=timezone.now(), beats=0)
    return task


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[bytes]
    hostname: str


def _worker(launch: Launch, queue: str, name: str, *pool: str) -> Worker:
    hostname = f"{name}-{uuid.uuid4().hex[:6]}@e2e"
    return Worker(launch(name, ["worker", *pool, "-Q", queue, "-n", hostname, "-l", "WARNING"]), hostname)


def _ready(sender: Celery, *workers: Worker) -> None:
    """Returns once every worker answers a ping (so that no message waits for one to start)."""

    def answers(worker: Worker) -> bool:
        return worker.process.poll() is not None or bool(sender.control.ping([worker.hostname], timeout=0.5))

    for worker in workers:
        eventually(lambda: answers(worker), timeout=60, what=f"{worker.hostname} answering a ping")  # noqa: B023
        assert worker.process.poll() is None, f"{worker.hostname} exited with {worker.process.returncode}"


def _beat(launch: Launch, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    args = ["beat", "-l", "WARNING", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"]
    args += ["--pidfile", str(tmp_path / f"{name}.pid"), "--schedule", str(tmp_path / f"{name}-schedule")]
    # Beat looks at its schedule at least this often (django-celery-beat's default is 5 s).
    args += ["--max-interval", "1"]
    return launch(name, args)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """A warm shutdown (a worker finishes what it is running); a kill when it takes too long."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _beats() -> int:
    return Heartbeat.objects.get(name="worker").beats


def _ran(runs: list[JobRun]) -> list[JobRun]:
    return [run for run in runs if run.outcome != Outcome.SKIPPED]


def _later_slot_than(tick: datetime) -> None:
    eventually(lambda: tick_of(EVERY, None, at=timezone.now()) > tick, timeout=EVERY + 5, what="the next tick")


def test_two_beats_side_by_side_run_each_tick_once(launch: Launch, sender: Celery, queue: str, tmp_path: Path) -> None:
    # Disabled while the processes start (they start together), so that no message waits for the worker.
    heartbeat = _heartbeat_alone_every_two_seconds(queue, enabled=False)
    beats = [_beat(launch, tmp_path, "beat-a"), _beat(launch, tmp_path, "beat-b")]
    # Two pool processes, so that the two messages of one tick can run at the same moment.
    _ready(sender, _worker(launch, queue, "worker", "--pool", "prefork", "--concurrency", "2"))
    heartbeat.enabled = True
    heartbeat.save()  # the beats see the change within their max interval
    # Both beats are sending once some tick was sent twice; then ten more seconds side by side.
    eventually(
        lambda: JobRun.objects.filter(job=JOB, outcome=Outcome.SKIPPED).exists(), timeout=60, what="a second send"
    )
    time.sleep(10)
    for beat in beats:
        beat.send_signal(signal.SIGTERM)
    for beat in beats:
        _stop(beat)
    eventually(
        lambda: (
            redis.Redis.from_url(BROKER).llen(queue) == 0
            and not _unacked(queue)
            and not JobRun.objects.filter(job=JOB, outcome=Outcome.RUNNING).exists()
        ),
        timeout=30,
        what="the worker drained",
    )

    runs = list(JobRun.objects.filter(job=JOB).order_by("id"))
    assert {run.trigger for run in runs} == {JobRun.Trigger.SCHEDULED}
    ran = _ran(runs)
    skipped = [run for run in runs if run.outcome == Outcome.SKIPPED]
    ticks = [run.tick for run in ran]
    assert len(ticks) >= 4, ticks
    assert len(set(ticks)) == len(ticks), "a tick ran twice"
    assert {run.outcome for run in ran} == {Outcome.SUCCEEDED}
    # The job's effect: exactly one beat per run, so one per tick.
    assert _beats() == len(ran)
    # The second beat sent too, about once per tick, and each of its sends was turned away: the tick
    # was claimed already, or its first send was still running and held the lock.
    assert len(skipped) >= max(2, len(ran) // 2), [(run.tick, run.error) for run in runs]
    for run in skipped:
        assert run.error.endswith("already ran") or run.error == "another run of this job holds its lock"
        if run.error.endswith("already ran"):
            assert run.tick in ticks


def test_a_worker_killed_mid_job_frees_the_lock_and_the_next_tick_runs_once(
    launch: Launch, sender: Celery, queue: str
) -> None:
    _heartbeat_alone_every_two_seconds(queue)
    db = connection.settings_dict
    # The heartbeat's row locked from a connection of our own: the job's UPDATE waits on it, so the
    # worker is in the middle of the job (lock held, run row `running`) for as long as we like.
    locker = psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
    )
    try:
        locker.execute(f"SELECT 1 FROM {Heartbeat._meta.db_table} WHERE name = 'worker' FOR UPDATE")  # noqa: S608
        # Solo pool: the job runs in the process we kill. The worker that takes over starts alongside
        # (a faster test), on a queue of its own until then: the killed worker must get the message.
        worker = _worker(launch, queue, "worker-1", "--pool", "solo")
        successor = _worker(launch, f"{queue}-2", "worker-2", "--pool", "solo")
        _ready(sender, worker, successor)
        # As beat sends it: the tick it is for, named at send time.
        killed_task = sender.send_task(TASK, kwargs=scheduled_start_kwargs(JOB), queue=queue).id

        def blocked_in_the_job() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE %s)",
                    [f'UPDATE "{Heartbeat._meta.db_table}"%'],
                )
                waiting = bool(cursor.fetchone()[0])
            return waiting and JobRun.objects.filter(job=JOB, outcome=Outcome.RUNNING).exists() and job_lock_held(JOB)

        eventually(blocked_in_the_job, timeout=30, what="the job blocked in its body, holding its lock")
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=10)
    finally:
        # Its session ends once its statement returns and it finds the client gone.
        locker.rollback()
        locker.close()

    eventually(lambda: not job_lock_held(JOB), timeout=15, what="the dead worker's lock released")
    killed = JobRun.objects.get(job=JOB)
    assert (killed.outcome, killed.trigger, killed.task_id) == (Outcome.RUNNING, JobRun.Trigger.SCHEDULED, killed_task)
    assert killed.tick is not None
    # The killed run's UPDATE is inside a transaction whose COMMIT never came: rolled back.
    assert _beats() == 0
    # acks_late: the message is still the dead worker's, unacknowledged; nothing requeues it until the
    # broker's visibility timeout.
    assert [m["headers"]["id"] for m in _unacked(queue).values()] == [killed_task]

    replies = sender.control.add_consumer(queue, destination=[successor.hostname], reply=True, timeout=10)
    assert replies and "ok" in next(iter(replies[0].values())), replies
    _later_slot_than(killed.tick)
    sender.send_task(TASK, kwargs=scheduled_start_kwargs(JOB), queue=queue)  # the next tick's send
    after = eventually(
        lambda: JobRun.objects.filter(job=JOB).exclude(pk=killed.pk).exclude(outcome=Outcome.RUNNING).first(),
        timeout=30,
        what="the next tick's run",
    )
    assert (after.outcome, after.trigger) == (Outcome.SUCCEEDED, JobRun.Trigger.SCHEDULED), after.error
    assert after.tick is not None and after.tick > killed.tick
    killed.refresh_from_db()
    assert killed.outcome == Outcome.FAILED  # marked by the next start, which got the lock
    assert killed.error.startswith("abandoned")
    assert _beats() == 1  # the next tick once; the killed tick's beat was rolled back
    # The killed message was not delivered again meanwhile (the visibility timeout is an hour).
    assert JobRun.objects.filter(task_id=killed_task).count() == 1
    assert [m["headers"]["id"] for m in _unacked(queue).values()] == [killed_task]

    # The visibility timeout passes (an hour by default; done here as the broker does it): the killed
    # message is delivered again, in a later slot. It names the killed run's tick, already claimed by
    # that (failed) run: recorded skipped, not run a second time.
    _later_slot_than(after.tick)
    with Connection(BROKER) as broker:
        channel: Any = broker.default_channel
        for tag in _unacked(queue):
            channel.qos.restore_by_tag(tag)
    again = eventually(
        lambda: JobRun.objects.filter(task_id=killed_task, outcome__in=[Outcome.SUCCEEDED, Outcome.SKIPPED]).first(),
        timeout=30,
        what="the redelivered message's run",
    )
    assert again.trigger == JobRun.Trigger.SCHEDULED
    assert again.tick == killed.tick
    assert again.outcome == Outcome.SKIPPED
    assert "already ran" in again.error
    _stop(successor.process)

    runs = list(JobRun.objects.filter(job=JOB))
    assert len(runs) == 3
    # Nothing counted twice: one beat per tick that a run claimed, and no tick claimed twice.
    ticks = [run.tick for run in _ran(runs)]
    assert len(set(ticks)) == len(ticks) == 2
    assert _beats() == 1  # only the run that succeeded counted
    assert not _unacked(queue)
