"""`make run`: the whole service in the foreground on embedded defaults (development only: devtools).

Migrates and installs the beat schedule; without STRIPE_SECRET_KEY starts the offline Stripe sandbox;
seeds the demo tenant (and, with the sandbox, its catalog and webhook endpoint) and its illustrative
billing history (devtools/demo_history.py, for the admin dashboard); then runs gunicorn,
a Celery worker and Celery beat as child processes. Ctrl-C, or any child dying, stops them all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from apps.checkout.trigger import sandbox_port as stripe_sandbox_port
from apps.checkout.trigger import webhook_secret_file
from apps.projects.demo import DEMO_PROJECT_SLUG
from billing_service.metrics_dir import multiproc_dir_empty
from devtools.sandbox import sandbox_start

STOP_GRACE_SECONDS = 10
SETTLE_SECONDS = 3


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _relative_python() -> str:
    """The interpreter running us, as a newcomer would type it (.venv/bin/python under `make run`)."""
    try:
        return str(Path(sys.executable).relative_to(Path.cwd()))
    except ValueError:
        return "python"


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
        self.stdout.write("Migrating (the first run takes about a minute: dj-stripe's migrations are heavy)…")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("install_beat_schedule")
        call_command("install_roles")

        children: dict[str, subprocess.Popen[bytes]] = {}
        try:
            env = dict(os.environ)
            seed_args = ["seed_demo", "--base-url", base_url]
            secret_file: Path | None = None
            if not settings.STRIPE_SECRET_KEY:
                env.update(self._start_sandbox(host, children))
                secret_file = webhook_secret_file()
                seed_args += ["--catalog", "--webhook-secret-file", str(secret_file)]
            # A separate process: the Stripe settings chosen above apply from its start.
            subprocess.run([sys.executable, "manage.py", *seed_args], env=env, check=True)  # noqa: S603
            if secret_file is not None:
                env["STRIPE_WEBHOOK_SECRETS"] = secret_file.read_text().strip()
            # Database rows only, no Stripe call: this process's settings do, after seed_demo's catalog.
            call_command("seed_demo_history")
            help_lines = (
                self._dashboard_help(base_url)
                + self._webhook_help(base_url, secret_file)
                + self._metrics_help(base_url)
            )
            self._metrics_dir_prepare()
            self._run(self._service_commands(host, port), base_url, children, env, help_lines)
        except subprocess.CalledProcessError as exc:
            raise CommandError(f"seed_demo failed with code {exc.returncode}") from None
        finally:
            self._stop(children)

    def _start_sandbox(self, host: str, children: dict[str, subprocess.Popen[bytes]]) -> dict[str, str]:
        sandbox_port = stripe_sandbox_port()
        if not _port_free(host, sandbox_port):
            raise CommandError(f"port {sandbox_port} (the Stripe sandbox) is in use; set STRIPE_SANDBOX_PORT")
        data_dir = Path(settings.VAR_DIR) / "sandbox"
        sandbox = sandbox_start(port=sandbox_port, data_dir=data_dir)
        children["stripe-sandbox"] = sandbox.process
        self.stdout.write(
            f"No STRIPE_SECRET_KEY: using the offline Stripe sandbox at {sandbox.base_url} (log {sandbox.log_path})"
        )
        return {"STRIPE_API_HOST": sandbox.base_url, "STRIPE_SECRET_KEY": sandbox.api_key}

    def _dashboard_help(self, base_url: str) -> list[str]:
        """Where the admin dashboard is, and that the demo project's figures are made up."""
        return [
            f"  dashboard    {base_url}{reverse('admin_dashboard')}?project={DEMO_PROJECT_SLUG}"
            " (the demo project's billing history is illustrative: ids *_demo_*)"
        ]

    def _webhook_help(self, base_url: str, secret_file: Path | None) -> list[str]:
        """Where the webhook signing secret is, and (with the sandbox) how to send the service a test event."""
        endpoint = f"{base_url}/api/v1/webhooks/stripe"
        if secret_file is None:
            # stripe_trigger drives the sandbox; against real Stripe, the Stripe CLI's `stripe trigger` does it.
            return [f"  webhooks     {endpoint}, verified with your STRIPE_WEBHOOK_SECRETS / STRIPE_WEBHOOK_SECRET"]
        try:
            shown = secret_file.relative_to(Path.cwd())
        except ValueError:
            shown = secret_file
        python = _relative_python()
        return [
            f"  webhooks     {endpoint}, signing secret in {shown}",
            f"               (given to the service as STRIPE_WEBHOOK_SECRETS; also `{python} manage.py stripe_trigger"
            " --print-secret`)",
            f"  test event   {python} manage.py stripe_trigger <event type>",
            "               e.g. checkout.session.completed, charge.refunded, customer.subscription.deleted"
            " (--help lists them)",
        ]

    def _metrics_help(self, base_url: str) -> list[str]:
        """Where the counters of web, worker and beat are seen, and the worker's own exporter."""
        metrics_dir: Path | None = settings.PROMETHEUS_MULTIPROC_DIR
        if metrics_dir is None:
            return [f"  metrics      {base_url}/metrics (the web's own series only: PROMETHEUS_MULTIPROC_DIR is unset)"]
        try:
            shown = metrics_dir.relative_to(Path.cwd())
        except ValueError:
            shown = metrics_dir
        lines = [f"  metrics      {base_url}/metrics: web, worker and beat together (their files in {shown})"]
        addr, port = settings.WORKER_METRICS_ADDR, settings.WORKER_METRICS_PORT
        if port == 0:
            lines.append("               the worker's own exporter is off (WORKER_METRICS_PORT=0)")
        elif _port_free(addr, port):
            lines.append(
                f"               the worker's own: http://{addr}:{port}/metrics (what a separate worker exports)"
            )
        else:
            lines.append(
                f"               the worker's own exporter: port {port} is in use, so it runs without one"
                " (set WORKER_METRICS_PORT)"
            )
        return lines

    def _metrics_dir_prepare(self) -> None:
        """Empties the metric files of an earlier run before web, worker and beat start writing theirs.

        Counters of stopped processes would otherwise be added to the new ones. Only this process and
        the seed commands wrote there since: nothing that must be kept.
        """
        metrics_dir: Path | None = settings.PROMETHEUS_MULTIPROC_DIR
        if metrics_dir is not None:
            multiproc_dir_empty(metrics_dir)

    def _service_commands(self, host: str, port: int) -> dict[str, list[str]]:
        python = sys.executable
        bin_dir = os.path.dirname(python)
        return {
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

    def _run(
        self,
        commands: dict[str, list[str]],
        base_url: str,
        children: dict[str, subprocess.Popen[bytes]],
        env: dict[str, str],
        help_lines: list[str],
    ) -> None:
        stop_requested = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stop_requested
            stop_requested = True

        # Ctrl-C reaches every process of the terminal's group at once; the children stop
        # themselves, and the handler makes sure their exit is not mistaken for a crash.
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        for name, argv in commands.items():
            # gunicorn gets its own session: when Ctrl-C's SIGINT reaches master and worker together,
            # the master SIGKILLs the worker mid-shutdown; alone, it gets our SIGTERM and stops gracefully.
            children[name] = subprocess.Popen(argv, env=env, start_new_session=name == "web")  # noqa: S603
        self.stdout.write(
            self.style.SUCCESS(
                f"Running: {', '.join(children)}. Service at {base_url}, "
                f"admin {base_url}/{settings.ADMIN_URL}. Ctrl-C stops all."
            )
        )
        self.stdout.write("\n".join(help_lines))
        failed: str | None = None
        while not stop_requested and failed is None:
            time.sleep(0.2)
            failed = next((name for name, child in children.items() if child.poll() is not None), None)
        if stop_requested:
            self.stdout.write("Stopping…")
            return
        assert failed is not None
        code = children[failed].returncode
        self.stderr.write(f"{failed} exited with code {code}; stopping the others")
        raise SystemExit(code or 1)

    def _stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        # After Ctrl-C the children got SIGINT from the terminal too and are already stopping; a
        # second signal would make gunicorn kill its worker mid-shutdown. Signal only the ones left.
        settle = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < settle and any(child.poll() is None for child in children.values()):
            time.sleep(0.1)
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
