"""`make run`: the whole service in the foreground on embedded defaults.

Migrates, installs the beat schedule, seeds the demo tenant, then runs gunicorn, a Celery worker and
Celery beat (and the Stripe sandbox when no STRIPE_SECRET_KEY is set) as child processes. Ctrl-C, or
any child dying, stops them all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

STOP_GRACE_SECONDS = 10


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and beat together in the foreground (make run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        base_url = f"http://{host}:{port}"
        if not _port_free(host, port):
            raise CommandError(f"port {port} on {host} is in use; stop what holds it or run `PORT=8001 make run`")
        self.stdout.write(f"Billing service starting at {base_url} (API docs {base_url}/api/docs/)")

        call_command("migrate", interactive=False, verbosity=0)
        call_command("install_beat_schedule")
        call_command("seed_demo", base_url=base_url)

        python = sys.executable
        bin_dir = os.path.dirname(python)
        commands = {
            "web": [
                os.path.join(bin_dir, "gunicorn"),
                "billing_service.wsgi",
                "--bind",
                f"{host}:{port}",
                # One process with threads: the local-memory cache is per process, and one
                # process keeps key revocations visible at once.
                "--workers",
                "1",
                "--threads",
                "8",
                "--graceful-timeout",
                "5",
                "--no-control-socket",  # it would be written under $HOME; nothing here uses it
            ],
            "worker": [python, "-m", "celery", "-A", "billing_service", "worker", "-l", "INFO", "--concurrency", "2"],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "billing_service",
                "beat",
                "-l",
                "INFO",
                "--scheduler",
                settings.CELERY_BEAT_SCHEDULER,
            ],
        }
        self._run(commands, base_url)

    def _run(self, commands: dict[str, list[str]], base_url: str) -> None:
        children: dict[str, subprocess.Popen[bytes]] = {}
        stop_requested = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stop_requested
            stop_requested = True

        # Ctrl-C reaches every process of the terminal's group at once; the children stop
        # themselves, and the handler makes sure their exit is not mistaken for a crash.
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        failed: str | None = None
        try:
            for name, argv in commands.items():
                children[name] = subprocess.Popen(argv)  # noqa: S603 - our own fixed argv
            self.stdout.write(
                self.style.SUCCESS(
                    f"Running: {', '.join(children)}. Service at {base_url}, admin {base_url}/admin/. Ctrl-C stops all."
                )
            )
            while not stop_requested and failed is None:
                time.sleep(0.2)
                failed = next((name for name, child in children.items() if child.poll() is not None), None)
            if stop_requested:
                self.stdout.write("Stopping…")
            elif failed is not None:
                self.stderr.write(f"{failed} exited with code {children[failed].returncode}; stopping the others")
        finally:
            self._stop(children)
        if failed is not None and not stop_requested:
            raise SystemExit(children[failed].returncode or 1)

    def _stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {STOP_GRACE_SECONDS}s; killing it")
                child.kill()
                child.wait()
        self.stdout.write("Stopped.")
