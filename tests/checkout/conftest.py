from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
import requests

from apps.catalog.demo import demo_catalog_seed
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant


@pytest.fixture
def catalog(alice: Tenant, stripe_sandbox: SandboxProcess) -> dict[str, str]:
    """Alice's demo catalog at the sandbox: pro-monthly, pro-annual, lifetime-export -> Stripe price id."""
    return {key.removeprefix("alpha-"): price_id for key, price_id, _ in demo_catalog_seed(project=alice.project)}


def checkout_body(tenant: Tenant, price_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": "user_42",
        "project_id": tenant.project.pk,
        "price_id": price_id,
        "mode": "subscription",
        "success_url": f"https://{tenant.project.slug}.example/billing/success",
        "cancel_url": f"https://{tenant.project.slug}.example/billing/cancel",
    }
    body.update(overrides)
    return body


def pay_on_hosted_page(checkout_url: str, card: str = "4242424242424242") -> requests.Response:
    """What a person does on Stripe's page: open it, then submit the pay form with a test card."""
    page = requests.get(checkout_url, timeout=10)
    assert page.status_code == 200
    return requests.post(f"{checkout_url}/pay", data={"card_number": card}, allow_redirects=False, timeout=10)


def counts(client: Any) -> dict[str, int]:
    """How many objects the sandbox holds of the kinds a checkout creates."""
    return {
        "customers": len(client.v1.customers.list(params={"limit": 100}).data),
        "sessions": len(client.v1.checkout.sessions.list(params={"limit": 100}).data),
    }


def query_of(url: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
