"""Which Stripe secret key to use for a project.

The gateway asks a resolver, named by STRIPE_CREDENTIALS_RESOLVER, so that a Vault-backed resolver
(hvac, reading e.g. `secret/billing/stripe/<project slug>`) can replace the settings one without
touching any caller. Resolvers must be cheap: the gateway calls one per Stripe request.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from apps.common.stripe_gateway.errors import StripeUnavailable


class CredentialsResolver(Protocol):
    def secret_key(self, *, project_slug: str | None) -> str: ...


class SettingsCredentialsResolver:
    """STRIPE_PROJECT_SECRET_KEYS (slug → key) when a project has its own account, else STRIPE_SECRET_KEY."""

    def secret_key(self, *, project_slug: str | None) -> str:
        per_project: dict[str, str] = settings.STRIPE_PROJECT_SECRET_KEYS
        key = per_project.get(project_slug or "") or settings.STRIPE_SECRET_KEY
        if not key:
            raise StripeUnavailable("No Stripe secret key is configured for this project.")
        return str(key)


@cache
def _resolver(path: str) -> CredentialsResolver:
    resolver: CredentialsResolver = import_string(path)()
    return resolver


def credentials_resolver() -> CredentialsResolver:
    return _resolver(settings.STRIPE_CREDENTIALS_RESOLVER)
