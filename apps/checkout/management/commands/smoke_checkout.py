from __future__ import annotations

import time
from pathlib import Path
from tempfile import mkdtemp
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.checkout.smoke import HttpService, InProcessService, Service, SmokeFailure, smoke_checkout
from apps.common.stripe_gateway import StripeInvalidRequest, StripeUnavailable

if TYPE_CHECKING:
    from devtools.sandbox import SandboxProcess


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
        sandbox: SandboxProcess | None = None
        try:
            if options["in_process"]:
                sandbox = self._sandbox_start()
                service = self._in_process_service(sandbox)
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
                sandbox.stop()
        self.stdout.write(self.style.SUCCESS(f"smoke checkout passed in {time.monotonic() - started:.1f}s"))

    def _sandbox_start(self) -> SandboxProcess:
        # The one dev-only path of apps/ to the sandbox, imported late: the production image has no
        # devtools/ (nor stripe_sandbox/), and --base-url works without them.
        try:
            from devtools.sandbox import sandbox_start
        except ImportError:
            raise CommandError("--in-process needs the development tools (devtools/); use --base-url") from None
        # Port 0: the sandbox binds a free port itself and reports it, so no other process can take it first.
        return sandbox_start(port=0, data_dir=Path(mkdtemp(prefix="smoke-sandbox-")), retry_time_scale=0.001)

    def _in_process_service(self, sandbox: SandboxProcess) -> Service:
        from apps.catalog.demo import demo_catalog_seed
        from apps.projects.demo import demo_seed

        self.stdout.write(f"ok   a private Stripe sandbox runs at {sandbox.base_url}")
        settings.STRIPE_API_HOST = sandbox.base_url
        settings.STRIPE_SECRET_KEY = sandbox.api_key
        seed = demo_seed(base_url="http://127.0.0.1:8000")
        demo_catalog_seed(project=seed.project)
        self.stdout.write(f"ok   the demo tenant and its catalog are seeded (project {seed.project.slug})")
        return InProcessService(seed.api_key)
