"""`manage.py stripe_trigger <event type>`: send the service a real, signed test event via the sandbox."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.checkout.trigger import ACTIONS, TriggerError, trigger, webhook_secret_file
from apps.projects.demo import DEMO_PROJECT_SLUG


class Command(BaseCommand):
    help = (
        "Make the offline Stripe sandbox perform the action behind an event (a paid checkout, a refund, "
        "a failed renewal, a cancellation, a declined payment), so the signed event reaches the service's "
        "webhook endpoint as it would from Stripe. Supported: " + ", ".join(sorted(ACTIONS)) + "."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event_type", nargs="?", help="e.g. checkout.session.completed")
        parser.add_argument("--user", default="demo-user", help="the micro-app's user id (default demo-user)")
        parser.add_argument("--project", default=DEMO_PROJECT_SLUG, help="project slug (default %(default)s)")
        parser.add_argument(
            "--mode",
            choices=["subscription", "payment"],
            default="subscription",
            help="checkout.session.completed: a subscription or a one-time payment (default subscription)",
        )
        parser.add_argument(
            "--print-secret", action="store_true", help="print the webhook signing secret `make run` uses, and exit"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["print_secret"]:
            self._print_secret()
            return
        event_type = options["event_type"]
        if not event_type:
            raise CommandError(f"give an event type; supported: {', '.join(sorted(ACTIONS))}")
        try:
            trigger(
                event_type,
                project_slug=options["project"],
                user_id=options["user"],
                mode=options["mode"],
                say=self.stdout.write,
            )
        except TriggerError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Triggered {event_type}."))

    def _print_secret(self) -> None:
        path = webhook_secret_file()
        if path.exists():
            self.stdout.write(path.read_text().strip())
            self.stderr.write(
                f"(from {path}: `make run` registers the service's webhook endpoint in the sandbox, writes its "
                "signing secret there and passes it to the service as STRIPE_WEBHOOK_SECRETS)"
            )
        elif os.environ.get("STRIPE_WEBHOOK_SECRETS"):
            self.stdout.write(os.environ["STRIPE_WEBHOOK_SECRETS"])
            self.stderr.write("(from STRIPE_WEBHOOK_SECRETS)")
        else:
            raise CommandError(f"no webhook secret yet: {path} is written by `make run` when it starts the sandbox")
