from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.entitlements.notifications.smoke import (
    HttpService,
    InProcessService,
    Service,
    SmokeFailure,
    smoke_fulfillment,
)

# The feature the demo project declares (apps/projects/demo.py), so the demo key works as is.
DEFAULT_FEATURE = "labs"


class Command(BaseCommand):
    help = (
        "Check that a signed notification reaches a micro-app: a throwaway receiver on 127.0.0.1, an endpoint "
        "for it, a grant to a throwaway user, the signed entitlements.updated, a revoke, cleanup. Non-zero exit "
        "on failure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", help="The running service (with a worker), such as http://127.0.0.1:8000.")
        parser.add_argument(
            "--api-key", help="A key with admin:write whose app may own endpoints (default: the demo key)."
        )
        parser.add_argument("--app-id", type=int, help="The key's app (default: from GET /api/v1/me).")
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="Use this process's database and run the worker here (no server, no Celery); seeds the demo tenant.",
        )
        parser.add_argument(
            "--feature-code", default=DEFAULT_FEATURE, help=f"Granted, then revoked (default {DEFAULT_FEATURE})."
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for each notification.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        http: HttpService | None = None
        try:
            if options["in_process"]:
                service: Service = self._in_process_service()
            elif options["base_url"]:
                key = options["api_key"] or settings.DEMO_API_KEY
                http = service = HttpService(options["base_url"], key, app_id=options["app_id"], timeout=30.0)
                self.stdout.write(f"ok   the key works (project {http.project_id}, app {http.app_id})")
            else:
                raise CommandError("give --base-url URL (and --api-key KEY), or --in-process")
            arrivals = smoke_fulfillment(
                service, self.stdout.write, feature_code=options["feature_code"], timeout=options["timeout"]
            )
        except SmokeFailure as exc:
            raise CommandError(f"FAILED {exc}") from None
        finally:
            if http is not None:
                http.close()
        latency = ", ".join(f"{a.seconds * 1000:.0f} ms" for a in arrivals)
        self.stdout.write(
            self.style.SUCCESS(
                f"smoke fulfillment passed in {time.monotonic() - started:.1f}s: {len(arrivals)} signed notifications "
                f"({latency} after their change)"
            )
        )

    def _in_process_service(self) -> Service:
        from apps.projects.demo import demo_seed

        if settings.IS_PRODUCTION:
            raise CommandError("--in-process seeds the demo tenant; use --base-url against a production service")
        seed = demo_seed(base_url="http://127.0.0.1:8000")
        self.stdout.write(f"ok   the demo tenant is seeded (project {seed.project.slug}, app {seed.app.name})")
        return InProcessService(project_id=seed.project.pk, app_id=seed.app.pk)
