"""The integration guide's examples, sent as written against the demo that `make run` seeds.

The bodies below are API.md's own examples (the seed guide's sections 3.1-3.6: checkout, portal,
entitlements, check, grant, revoke), with only the placeholders substituted: the demo key, the
demo project's id and a demo price id. Each must answer 2xx, except the grant whose `valid_to`
(2026-01-01) has passed, which must say so in a 400.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from apps.catalog.demo import demo_catalog_seed
from apps.projects.demo import demo_seed
from stripe_sandbox.testing import SandboxProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class Guide:
    def __init__(self, base_url: str, key: str, project_id: int, price_id: str) -> None:
        self.base_url = base_url
        self.headers = {"X-API-Key": key}
        self.project_id = project_id
        self.price_id = price_id

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.base_url}{path}", json=body, headers=self.headers, timeout=15)

    def get(self, path: str, params: dict[str, Any]) -> requests.Response:
        return requests.get(f"{self.base_url}{path}", params=params, headers=self.headers, timeout=15)


@pytest.fixture
def guide(live_server: Any, stripe_sandbox: SandboxProcess) -> Guide:
    seed = demo_seed(base_url=live_server.url)
    prices = {key: price for key, price, _ in demo_catalog_seed(project=seed.project)}
    return Guide(live_server.url, seed.api_key, seed.project.pk, prices["demo-pro-monthly"])


def test_the_checkout_example_creates_a_session_on_the_guides_own_urls(guide: Guide) -> None:
    response = guide.post(
        "/api/v1/checkout/session",
        {
            "user_id": "user_42",
            "project_id": guide.project_id,
            "price_id": guide.price_id,
            "mode": "subscription",
            "success_url": "https://app.local/success",
            "cancel_url": "https://app.local/cancel",
            "quantity": 1,
            "trial_days": 14,
            "metadata": {},
        },
    )
    assert response.status_code == 201, response.text
    assert set(response.json()) >= {"checkout_url", "session_id", "expires_at"}


def test_every_example_of_the_guide_answers_as_documented(guide: Guide) -> None:
    pid = guide.project_id
    checkout = guide.post(
        "/api/v1/checkout/session",
        {
            "user_id": "user_42",
            "project_id": pid,
            "price_id": guide.price_id,
            "mode": "subscription",
            "success_url": "https://app.local/success",
            "cancel_url": "https://app.local/cancel",
        },
    )
    assert checkout.status_code == 201, checkout.text

    portal = guide.post(
        "/api/v1/portal/session", {"user_id": "user_42", "project_id": pid, "return_url": "https://app.local/account"}
    )
    assert portal.status_code == 201, portal.text
    assert portal.json()["portal_url"].startswith("http")

    listing = guide.get(
        "/api/v1/entitlements",
        {"user_id": "user_42", "project_id": pid, "feature_code": "pro", "as_of": "2026-01-01T00:00:00Z"},
    )
    assert listing.status_code == 200, listing.text
    assert listing.json() == {"entitlements": []}

    check = guide.get("/api/v1/entitlements/check", {"user_id": "user_42", "project_id": pid, "feature_code": "pro"})
    assert check.status_code == 200, check.text
    assert check.json() == {"feature_code": "pro", "active": False, "valid_to": None}

    expired_grant = guide.post(
        "/api/v1/admin/grant",
        {
            "user_id": "user_42",
            "project_id": pid,
            "feature_code": "labs",
            "granted_by": "support@spacehq",
            "reason": "VIP pilot",
            "valid_to": "2026-01-01T00:00:00Z",
        },
    )
    assert expired_grant.status_code == 400, expired_grant.text
    assert "valid_to" in expired_grant.json()
    assert "past" in str(expired_grant.json()["valid_to"]).lower()

    grant = guide.post(
        "/api/v1/admin/grant",
        {
            "user_id": "user_42",
            "project_id": pid,
            "feature_code": "labs",
            "granted_by": "support@spacehq",
            "reason": "VIP pilot",
        },
    )
    assert grant.status_code == 201, grant.text
    labs = guide.get("/api/v1/entitlements/check", {"user_id": "user_42", "project_id": pid, "feature_code": "labs"})
    assert labs.json()["active"] is True

    revoke = guide.post(
        "/api/v1/admin/revoke",
        {
            "user_id": "user_42",
            "project_id": pid,
            "feature_code": "labs",
            "revoked_by": "support@spacehq",
            "reason": "pilot over",
        },
    )
    assert revoke.status_code == 200, revoke.text
    assert revoke.json() == {"revoked": 1}
    labs = guide.get("/api/v1/entitlements/check", {"user_id": "user_42", "project_id": pid, "feature_code": "labs"})
    assert labs.json()["active"] is False

    for path in (f"/api/v1/metrics/project/{pid}/subscriptions", f"/api/v1/metrics/project/{pid}/revenue"):
        answer = guide.get(path, {})
        assert answer.status_code == 200, (path, answer.text)
