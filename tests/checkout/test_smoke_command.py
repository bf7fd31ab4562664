from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.catalog.models import PriceFeature

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _contained_settings(settings: object) -> None:
    # --in-process points the Stripe settings at its private sandbox; inside pytest-django's
    # settings override those assignments are undone after each test.
    settings.STRIPE_API_HOST = None  # type: ignore[attr-defined]


def test_smoke_checkout_in_process_walks_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("smoke_checkout", in_process=True)
    out = capsys.readouterr().out
    for step in (
        "the API key works",
        "the catalog has a subscription price",
        "a checkout session is created",
        "the hosted checkout page opens",
        "paying with a test card redirects to the success URL",
    ):
        assert f"ok   {step}" in out
    assert "smoke checkout passed" in out


def test_smoke_checkout_fails_loudly_when_a_step_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    # No price mapped to a feature: the catalog step must fail, and the command exit non-zero.
    from apps.catalog import demo

    original = demo.demo_catalog_seed

    def seed_without_features(**kwargs: object) -> object:
        result = original(**kwargs)  # type: ignore[arg-type]
        PriceFeature.objects.all().delete()
        return result

    monkeypatch.setattr(demo, "demo_catalog_seed", seed_without_features)
    with pytest.raises(CommandError, match="FAILED no active recurring price with a feature code"):
        call_command("smoke_checkout", in_process=True)


def test_smoke_checkout_needs_a_target() -> None:
    with pytest.raises(CommandError, match="give --base-url"):
        call_command("smoke_checkout")
