"""Headless-browser fixtures: Debian's chromium driven by Playwright, with no way out of loopback.

For any test that looks at a page the service serves:

    def test_it_renders(live_server, offline_page, screenshot):
        offline_page.goto(f"{live_server.url}/api/docs/")
        ...
        screenshot(offline_page, "docs")

`offline_page` aborts every request to a host other than 127.0.0.1/localhost and lists them in
`offline_page.blocked` (attached by the fixture), so a page that needs a CDN fails visibly.
Chromium is the system's (`apt-get install chromium`), never a Playwright download. Without it a
bare run skips these tests with the reason; with CI=true it fails them (.ci/run installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"  # git-ignored with var/
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # containers and CI users without user namespaces
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_executable() -> str:
    """The system chromium, or the test's skip (bare run) or failure (CI) saying how to get it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    reason = "needs Debian's chromium for the browser tests: apt-get install -y chromium"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return (parts.hostname or "") in LOOPBACK_HOSTS


@contextmanager
def offline_browser_page() -> Iterator[Any]:
    """A chromium page that reaches loopback only; `page.blocked` lists what it refused."""
    executable = chromium_executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 1600}).new_page()
        blocked: list[str] = []

        def only_loopback(route: Any) -> None:
            if _is_loopback(route.request.url):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", only_loopback)
        setattr(page, "blocked", blocked)  # noqa: B010 - Page declares no such attribute
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def offline_page(transactional_db: None) -> Iterator[Any]:
    # Playwright's sync API runs an asyncio loop in this thread while the browser is open, and Django
    # refuses ORM calls then (SynchronousOnlyOperation). Set up after the database, this fixture is
    # torn down before it, so the database's flush runs with the loop closed. Data a test needs must
    # exist before the page opens (fixtures listed before this one), or use offline_browser_page().
    with offline_browser_page() as page:
        yield page


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
