"""The service on a live server, the Stripe sandbox delivering signed webhooks to it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import stripe

from apps.catalog.demo import demo_catalog_seed
from apps.common.stripe_gateway import webhook_endpoint_replace
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant


@dataclass
class Stack:
    tenant: Tenant
    sandbox: SandboxProcess
    stripe: stripe.StripeClient
    prices: dict[str, str]

    def check(self, user_id: str, feature: str) -> dict[str, Any]:
        pid = self.tenant.project.pk
        response = self.tenant.client().get(
            f"/api/v1/entitlements/check?user_id={user_id}&project_id={pid}&feature_code={feature}"
        )
        assert response.status_code == 200, response.content
        return dict(response.json())

    def checkout(self, user_id: str, price: str, mode: str = "subscription", card: str = "4242424242424242") -> str:
        body = {
            "user_id": user_id,
            "project_id": self.tenant.project.pk,
            "price_id": self.prices[price],
            "mode": mode,
            "success_url": "https://alpha.example/ok",
            "cancel_url": "https://alpha.example/no",
        }
        response = self.tenant.client().post("/api/v1/checkout/session", body, format="json")
        assert response.status_code == 201, response.json()
        url = str(response.json()["checkout_url"])
        paid = requests.post(f"{url}/pay", data={"card_number": card}, allow_redirects=False, timeout=10)
        assert paid.status_code == 303, paid.text[:300]
        return url

    def portal_form_post(self, user_id: str, action: str, fields: dict[str, str]) -> None:
        body = {"user_id": user_id, "project_id": self.tenant.project.pk, "return_url": "https://alpha.example/acct"}
        portal = self.tenant.client().post("/api/v1/portal/session", body, format="json")
        assert portal.status_code == 201, portal.json()
        page = requests.get(portal.json()["portal_url"], timeout=10).text
        match = re.search(rf'action="([^"]+/{action})"', page)
        assert match, page[:500]
        origin = self.sandbox.base_url
        response = requests.post(origin + match.group(1), data=fields, allow_redirects=False, timeout=10)
        assert response.status_code in (200, 303), response.text[:300]


def eventually(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.1)


@pytest.fixture
def stack(
    live_server: Any, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, alice: Tenant, settings: Any
) -> Stack:
    prices = {key.removeprefix("alpha-"): price for key, price, _ in demo_catalog_seed(project=alice.project)}
    endpoint = webhook_endpoint_replace(url=f"{live_server.url}/api/v1/webhooks/stripe", enabled_events=["*"])
    settings.STRIPE_WEBHOOK_SECRETS = [endpoint["secret"]]
    return Stack(tenant=alice, sandbox=stripe_sandbox, stripe=stripe_client, prices=prices)
