"""What is development-only stays out of production: devtools, the sandbox, its key and its API version."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

import stripe_sandbox
from tests.common.test_settings import PRODUCTION_ENV, ROOT, _manage


def test_the_service_and_the_sandbox_agree_on_the_api_version_and_the_sandbox_key() -> None:
    # One constant on each side (settings, stripe_sandbox/__init__.py): this keeps them equal.
    assert settings.STRIPE_API_VERSION == stripe_sandbox.API_VERSION
    assert settings.STRIPE_SANDBOX_SECRET_KEY == stripe_sandbox.DEFAULT_API_KEY


def test_the_api_version_is_written_once_in_the_service_and_once_in_the_sandbox() -> None:
    version = re.compile(re.escape(stripe_sandbox.API_VERSION))
    found = sorted(
        str(path.relative_to(ROOT))
        for folder in ("apps", "billing_service", "stripe_sandbox", "devtools")
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts and version.search(path.read_text())
    )
    assert found == ["billing_service/settings.py", "stripe_sandbox/__init__.py"]


def test_production_settings_do_not_install_the_development_tools() -> None:
    result = _manage("help", "devstack", env=PRODUCTION_ENV)
    assert result.returncode != 0
    assert "Unknown command: 'devstack'" in result.stderr


def test_apps_never_import_the_sandbox_and_reach_devtools_only_for_smoke_in_process() -> None:
    sandbox_importers, devtools_importers = [], []
    for path in (ROOT / "apps").rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(from|import) stripe_sandbox\b", text, re.MULTILINE):
            sandbox_importers.append(path)
        if re.search(r"^\s*(from|import) devtools\b", text, re.MULTILINE):
            devtools_importers.append(path.relative_to(ROOT))
    assert sandbox_importers == []
    assert devtools_importers == [Path("apps/checkout/management/commands/smoke_checkout.py")]
