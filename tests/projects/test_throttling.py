from __future__ import annotations

import pytest
import time_machine

from apps.projects.services import app_update
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db


@time_machine.travel("2026-11-22T10:00:10Z", tick=False)
def test_a_key_over_its_limit_gets_429_with_retry_after(alice: Tenant, bob: Tenant) -> None:
    app_update(app=alice.app, rate_limit="3/min")
    client = alice.client()
    statuses = [client.get("/api/v1/me").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/me")
    assert limited.status_code == 429
    # The window is the current minute: 50 s remain of it.
    assert limited["Retry-After"] == "50"
    assert "throttled" in limited.json()["detail"].lower()
    # Another tenant's key has its own budget.
    assert bob.client().get("/api/v1/me").status_code == 200


def test_the_budget_comes_back_in_the_next_window(alice: Tenant) -> None:
    app_update(app=alice.app, rate_limit="2/min")
    client = alice.client()
    with time_machine.travel("2026-11-22T10:00:00Z", tick=False) as traveller:
        assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
        traveller.shift(61)
        assert client.get("/api/v1/me").status_code == 200


@time_machine.travel("2026-11-22T10:00:00Z", tick=False)
def test_the_default_rate_applies_when_the_app_sets_none(alice: Tenant, settings: object) -> None:
    from rest_framework.settings import api_settings

    rates: dict[str, str | None] = api_settings.DEFAULT_THROTTLE_RATES  # type: ignore[assignment]
    original = dict(rates)
    rates["api_key"] = "2/min"
    try:
        client = alice.client()
        assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
    finally:
        rates.clear()
        rates.update(original)
