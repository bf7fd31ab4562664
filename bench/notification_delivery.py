"""Notifications delivered per second by ONE fulfillment worker run to a local receiver on 127.0.0.1.

Each round queues N `entitlements.updated` notifications for one endpoint (the outbox's
notifications_write, one transaction, as a burst of recomputes would), then times one
fulfillment_run() in this process: what a `fulfillment.deliver` task does in a Celery worker
(claims of FULFILLMENT_BATCH_SIZE under a lease, 8 signed POSTs in flight on one pooled client, one
short transaction per recorded answer). The receiver is another process (a threaded http.server
answering 200 with keep-alive), so it does not share this process's GIL. The wake-up on commit is
switched off: only the timed run delivers.

    .venv/bin/python bench/notification_delivery.py [--notifications 2000] [--batch-size 100]
        [--rounds 3] [--database billing_bench] [--redis-db 11]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

SLUG = "notify-bench"


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes: with Nagle's algorithm the second waits for the
    # client's delayed ACK (40 ms), which would measure the receiver, not the worker.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int) -> None:
    """The receiver process: answers every POST 200 until killed."""
    server = ThreadingHTTPServer((common.HOST, port), _Ok)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


def _receiver() -> tuple[subprocess.Popen[str], str]:
    import socket

    with socket.socket() as probe:  # a free port, for the child to bind
        probe.bind((common.HOST, 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603 - this script itself, fixed arguments
        [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True, cwd=common.ROOT
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process, f"http://{common.HOST}:{port}/notifications"


def _cleanup() -> None:
    from apps.entitlements.notifications.models import Notification
    from apps.projects.models import App

    Notification.objects.filter(project__slug=SLUG).delete()
    App.objects.filter(project__slug=SLUG).delete()  # and its endpoint
    common.project_rows_delete(SLUG, ())


def _tenant(url: str) -> Any:
    from apps.entitlements.notifications.models import NotificationEndpoint
    from apps.projects.models import App, Project

    _cleanup()
    project = Project.objects.create(name="Notify bench", slug=SLUG)
    app = App.objects.create(project=project, name="receiver", scopes=[])
    NotificationEndpoint.objects.create(app=app, url=url)
    return project


def _round(project: Any, count: int) -> tuple[float, int]:
    from apps.entitlements.notifications.models import Delivery, Notification
    from apps.entitlements.notifications.outbox import ENTITLEMENTS_UPDATED, Message, notifications_write
    from apps.entitlements.notifications.worker import fulfillment_run

    Notification.objects.filter(project=project).delete()
    messages = [
        Message(user_id=f"u{i}", data={"user_id": f"u{i}", "version": 1, "entitlements": []}) for i in range(count)
    ]
    notifications_write(project=project, notification_type=ENTITLEMENTS_UPDATED, messages=messages)
    started = time.monotonic()
    summary = fulfillment_run(budget_seconds=3600)
    elapsed = time.monotonic() - started
    delivered = Delivery.objects.filter(notification__project=project, status=Delivery.Status.DELIVERED).count()
    assert summary.delivered == delivered == count, (summary, delivered)
    return elapsed, summary.batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100, help="FULFILLMENT_BATCH_SIZE for the run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=common.DB_NAME)
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    common.DB_NAME = args.database
    common.ENV["DATABASE_URL"] = f"postgres://postgres@{common.HOST}:5432/{args.database}"
    common.ENV["REDIS_URL"] = f"redis://{common.HOST}:6379/{args.redis_db}"
    common.ensure_database()
    common.django_setup()
    from django.conf import settings

    from apps.entitlements.notifications import wakeup

    settings.FULFILLMENT_BATCH_SIZE = args.batch_size
    wakeup.fulfillment_wake = lambda: None  # no task is published: the timed run alone delivers

    receiver, url = _receiver()
    rates: list[float] = []
    try:
        project = _tenant(url)
        for number in range(1, args.rounds + 1):
            elapsed, batches = _round(project, args.notifications)
            rates.append(args.notifications / elapsed)
            print(
                f"round {number}: {args.notifications} delivered in {elapsed:.2f} s ({batches} batches): "
                f"{rates[-1]:.0f}/s",
                flush=True,
            )
    finally:
        receiver.kill()
        receiver.wait()
        _cleanup()
    print(
        f"notifications/s, one worker run, batch {args.batch_size}, {args.notifications} per round: "
        f"min {min(rates):.0f}, median {statistics.median(rates):.0f}, max {max(rates):.0f}"
    )
    print("command: .venv/bin/python bench/notification_delivery.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
