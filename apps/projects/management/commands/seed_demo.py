from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.roles import demo_role_users_create
from apps.projects.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create the demo project, app, API key, admin user and one staff user per role (development only; idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the service listens.")
        parser.add_argument(
            "--catalog",
            action="store_true",
            help="Also create the demo products and prices at Stripe (the sandbox) and map their feature codes.",
        )
        parser.add_argument(
            "--webhook-secret-file",
            help="Register <base-url>/api/v1/webhooks/stripe with Stripe and write its signing secret to this file.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        base = options["base_url"].rstrip("/")
        try:
            seed = demo_seed(base_url=base)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        # One staff user per role (apps/common/roles.py), so that each role's admin can be tried.
        role_users = demo_role_users_create()
        catalog_lines: list[str] = []
        if options["catalog"]:
            from apps.catalog.demo import demo_catalog_seed

            for lookup_key, price_id, feature in demo_catalog_seed(project=seed.project):
                catalog_lines.append(f"  price        {price_id}  {lookup_key} -> feature {feature}")
        if options["webhook_secret_file"]:
            from apps.common.stripe_gateway import webhook_endpoint_replace

            endpoint = webhook_endpoint_replace(url=f"{base}/api/v1/webhooks/stripe", enabled_events=["*"])
            with open(options["webhook_secret_file"], "w", encoding="utf-8") as handle:
                handle.write(str(endpoint["secret"]))
            catalog_lines.append(f"  webhooks     {endpoint['url']} registered ({endpoint['id']})")
        pw_note = "" if seed.admin_created else " (if you have not changed it)"
        self.stdout.write(
            "\n".join(
                [
                    self.style.SUCCESS("Demo data ready."),
                    f"  project      {seed.project.slug} (id {seed.project.pk})",
                    f"  app          {seed.app.name} (id {seed.app.pk}), scopes: {', '.join(seed.app.scopes)}",
                    f"  API key      {seed.api_key}",
                    f"  features     {', '.join(seed.project.feature_codes)} (declared: grants may use them)",
                    f"  redirects    {', '.join(seed.project.allowed_redirect_prefixes)}",
                    f"  admin        {base}/{settings.ADMIN_URL}",
                    f"               user {seed.admin_username} / password {seed.admin_password}{pw_note}",
                    *(
                        f"               user {user} / password {password} (role {user}, if you have not changed it)"
                        for user, password in role_users.items()
                    ),
                    *catalog_lines,
                    f"  API docs     {base}/api/docs/",
                    "  try it:",
                    f'    curl -s -H "X-API-Key: {seed.api_key}" {base}/api/v1/me',
                ]
            )
        )
