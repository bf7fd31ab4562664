from __future__ import annotations

import pytest
import stripe
from django.core.management import call_command

from apps.checkout.services import customer_get_or_create
from apps.common.stripe_gateway import StripeUnavailable
from apps.common.stripe_gateway.credentials import SettingsCredentialsResolver
from stripe_sandbox import DEFAULT_API_KEY
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db


class RecordingResolver:
    """Stands for a Vault-backed resolver: any class with secret_key(project_slug=...) will do."""

    asked: list[str | None] = []

    def secret_key(self, *, project_slug: str | None) -> str:
        self.asked.append(project_slug)
        return DEFAULT_API_KEY  # the sandbox accepts only its own key, as Stripe does an account's


def test_settings_resolver_prefers_a_projects_own_key(settings: object) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_default"  # type: ignore[attr-defined]
    settings.STRIPE_PROJECT_SECRET_KEYS = {"alpha": "sk_test_alpha"}  # type: ignore[attr-defined]
    resolver = SettingsCredentialsResolver()
    assert resolver.secret_key(project_slug="alpha") == "sk_test_alpha"
    assert resolver.secret_key(project_slug="bravo") == "sk_test_default"


def test_settings_resolver_without_any_key_is_unavailable(settings: object) -> None:
    settings.STRIPE_SECRET_KEY = None  # type: ignore[attr-defined]
    settings.STRIPE_PROJECT_SECRET_KEYS = {}  # type: ignore[attr-defined]
    with pytest.raises(StripeUnavailable, match="No Stripe secret key"):
        SettingsCredentialsResolver().secret_key(project_slug="alpha")


@pytest.mark.e2e
def test_the_gateway_asks_the_configured_resolver_per_project(
    alice: Tenant, stripe_sandbox: SandboxProcess, settings: object
) -> None:
    settings.STRIPE_CREDENTIALS_RESOLVER = f"{__name__}.RecordingResolver"  # type: ignore[attr-defined]
    RecordingResolver.asked.clear()
    customer = customer_get_or_create(project=alice.project, user_id="u-vault")
    assert customer.stripe_customer_id is not None
    assert RecordingResolver.asked == ["alpha"]


@pytest.mark.e2e
def test_seed_demo_with_catalog_is_idempotent(
    stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("seed_demo", catalog=True)
    call_command("seed_demo", catalog=True)
    out = capsys.readouterr().out
    assert out.count("demo-pro-monthly -> feature pro") == 2
    assert len(stripe_client.v1.products.list().data) == 2
    assert len(stripe_client.v1.prices.list().data) == 3


@pytest.mark.e2e
def test_seed_demo_registers_the_webhook_endpoint_and_writes_its_secret(
    stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, tmp_path: object
) -> None:
    secret_file = f"{tmp_path}/secret"
    call_command("seed_demo", base_url="http://127.0.0.1:8123", webhook_secret_file=secret_file)
    call_command("seed_demo", base_url="http://127.0.0.1:8123", webhook_secret_file=secret_file)
    with open(secret_file) as handle:
        assert handle.read().startswith("whsec_")
    endpoints = stripe_client.v1.webhook_endpoints.list().data
    assert [e.url for e in endpoints] == ["http://127.0.0.1:8123/api/v1/webhooks/stripe"]
