from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.checkout.smoke import HttpService, InProcessService, Service, SmokeFailure, smoke_checkout
from apps.common.sandbox_launcher import SANDBOX_SECRET_KEY, sandbox_start, sandbox_wait_healthy
from apps.common.stripe_gateway import StripeInvalidRequest, StripeUnavailable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Command(BaseCommand):
    help = "Walk a checkout end to end (key, catalog, session, hosted page, payment); non-zero exit on failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", help="The running service, such as http://127.0.0.1:8000.")
        parser.add_argument("--api-key", help="A key with checkout:write (default: the demo key).")
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="Use this process's app (no port bound) and a private Stripe sandbox; seeds the demo tenant.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        sandbox: subprocess.Popen[bytes] | None = None
        try:
            if options["in_process"]:
                port = _free_port()
                sandbox = sandbox_start(
                    port=port, data_dir=Path(mkdtemp(prefix="smoke-sandbox-")), retry_time_scale=0.001
                )
                service = self._in_process_service(sandbox, port)
            elif options["base_url"]:
                service = HttpService(options["base_url"].rstrip("/"), options["api_key"] or settings.DEMO_API_KEY)
            else:
                raise CommandError("give --base-url URL (and --api-key KEY), or --in-process")
            smoke_checkout(service, self.stdout.write)
        except SmokeFailure as exc:
            raise CommandError(f"FAILED {exc}") from None
        except (StripeInvalidRequest, StripeUnavailable) as exc:
            raise CommandError(f"FAILED at Stripe: {exc.detail}") from None
        finally:
            if sandbox is not None:
                sandbox.terminate()
                sandbox.wait(timeout=10)
        self.stdout.write(self.style.SUCCESS(f"smoke checkout passed in {time.monotonic() - started:.1f}s"))

    def _in_process_service(self, sandbox: subprocess.Popen[bytes], port: int) -> Service:
        from apps.catalog.demo import demo_catalog_seed
        from apps.projects.demo import demo_seed

        url = f"http://127.0.0.1:{port}"
        sandbox_wait_healthy(url, sandbox)
        self.stdout.write(f"ok   a private Stripe sandbox runs at {url}")
        settings.STRIPE_API_HOST = url
        settings.STRIPE_SECRET_KEY = SANDBOX_SECRET_KEY
        seed = demo_seed(base_url="http://127.0.0.1:8000")
        demo_catalog_seed(project=seed.project)
        self.stdout.write(f"ok   the demo tenant and its catalog are seeded (project {seed.project.slug})")
        return InProcessService(seed.api_key)
