"""A checkout walked through as a micro-app and its user would: key, catalog, session, hosted page.

The service is reached over HTTP (`HttpService`) or in this process through the WSGI app
(`InProcessService`); the hosted page is always reached over HTTP, on the Stripe sandbox.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests


class SmokeFailure(Exception):
    pass


class Service(Protocol):
    def get(self, path: str) -> tuple[int, Any]: ...
    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]: ...


@dataclass
class HttpService:
    base_url: str
    api_key: str

    def _headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key, "Accept": "application/json"}

    def get(self, path: str) -> tuple[int, Any]:
        response = requests.get(self.base_url + path, headers=self._headers(), timeout=30)
        return response.status_code, _json(response)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = requests.post(self.base_url + path, json=body, headers=self._headers(), timeout=30)
        return response.status_code, _json(response)


@dataclass
class InProcessService:
    api_key: str

    def __post_init__(self) -> None:
        from django.test import Client

        self.client = Client(HTTP_X_API_KEY=self.api_key)

    def get(self, path: str) -> tuple[int, Any]:
        response = self.client.get(path)
        return response.status_code, response.json()

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = self.client.post(path, body, content_type="application/json")
        return response.status_code, response.json()


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"body": response.text[:200]}


def _expect(status: int, wanted: int, body: Any, what: str) -> None:
    if status != wanted:
        raise SmokeFailure(f"{what}: HTTP {status}, expected {wanted}: {body}")


def smoke_checkout(service: Service, say: Callable[[str], None], *, card: str = "4242424242424242") -> None:
    """Raises SmokeFailure at the first step that does not behave."""

    def step(name: str, action: Callable[[], str]) -> None:
        started = time.monotonic()
        detail = action()
        say(f"ok   {name} ({(time.monotonic() - started) * 1000:.0f} ms){': ' + detail if detail else ''}")

    state: dict[str, Any] = {}

    def whoami() -> str:
        status, body = service.get("/api/v1/me")
        _expect(status, 200, body, "GET /api/v1/me")
        state["project_id"] = body["project"]["id"]
        return f"project {body['project']['slug']}"

    def project() -> str:
        status, body = service.get(f"/api/v1/projects/{state['project_id']}")
        _expect(status, 200, body, "GET /api/v1/projects/{id}")
        if not body["allowed_redirect_prefixes"]:
            raise SmokeFailure("the project allows no redirect URL prefix; add one in the admin")
        state["prefix"] = body["allowed_redirect_prefixes"][0].rstrip("/")
        return str(state["prefix"])

    def price() -> str:
        status, body = service.get("/api/v1/catalog/prices")
        _expect(status, 200, body, "GET /api/v1/catalog/prices")
        usable = [p for p in body["results"] if p["active"] and p["recurring"] and p["feature_code"]]
        if not usable:
            raise SmokeFailure("no active recurring price with a feature code; run seed_demo --catalog or map one")
        state["price"] = usable[0]["price_id"]
        return f"{state['price']} ({usable[0]['feature_code']})"

    def checkout() -> str:
        body = {
            "user_id": f"smoke-{uuid.uuid4().hex[:12]}",
            "project_id": state["project_id"],
            "price_id": state["price"],
            "mode": "subscription",
            "success_url": f"{state['prefix']}/smoke/success",
            "cancel_url": f"{state['prefix']}/smoke/cancel",
        }
        status, answer = service.post("/api/v1/checkout/session", body)
        _expect(status, 201, answer, "POST /api/v1/checkout/session")
        state["url"] = answer["checkout_url"]
        return str(state["url"])

    def hosted_page() -> str:
        response = requests.get(state["url"], timeout=30)
        _expect(response.status_code, 200, response.text[:200], "GET the hosted checkout page")
        return ""

    def pay() -> str:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(state["url"]))
        try:
            sandbox = requests.get(f"{origin}/_sandbox/health", timeout=5).status_code == 200
        except requests.RequestException:
            sandbox = False
        if not sandbox:
            return "skipped: the page is Stripe's own; pay it in a browser with a test card"
        response = requests.post(f"{state['url']}/pay", data={"card_number": card}, allow_redirects=False, timeout=30)
        _expect(response.status_code, 303, response.text[:200], "POST the hosted page's pay form")
        location = response.headers.get("Location", "")
        if not location.startswith(f"{state['prefix']}/smoke/success"):
            raise SmokeFailure(f"paid, but redirected to {location!r} instead of the success URL")
        return f"redirected to {location}"

    for name, action in [
        ("the API key works", whoami),
        ("the project has a redirect allowlist", project),
        ("the catalog has a subscription price", price),
        ("a checkout session is created", checkout),
        ("the hosted checkout page opens", hosted_page),
        ("paying with a test card redirects to the success URL", pay),
    ]:
        step(name, action)
