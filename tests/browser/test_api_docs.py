"""/api/docs/ works with no network: Swagger UI comes from our static files, not a CDN."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect


def test_api_docs_show_the_operations_with_every_non_loopback_request_blocked(
    live_server: Any, offline_page: Any, screenshot: Any
) -> None:
    offline_page.goto(f"{live_server.url}/api/docs/")
    operations = offline_page.locator(".opblock")
    expect(operations.first).to_be_visible(timeout=15_000)
    expect(offline_page.locator(".opblock-summary-path", has_text="/api/v1/entitlements/check").first).to_be_visible()
    path = screenshot(offline_page, "api-docs")
    assert operations.count() >= 10
    assert offline_page.blocked == [], "the page asked for resources outside loopback"
    assert path.stat().st_size > 0
