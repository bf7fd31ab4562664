"""Stand-ins for the billing service in the SDK's tests: an httpx.MockTransport handler and a real
threaded HTTP server on 127.0.0.1, plus builders of signed notifications."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from billing_client import BillingClient, signature_header

PROJECT_ID = 1
API_KEY = "bk_test_sdk"
SECRET = "whsec_sdk_current"
OLD_SECRET = "whsec_sdk_previous"
BASE_URL = "http://billing.test"

Json = dict[str, Any]


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item(
    feature_code: str,
    *,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    source: str = "subscription",
    source_id: int = 12,
) -> Json:
    """One entitlement in the service's JSON shape; by default active since an hour ago, forever."""
    start = valid_from or datetime.now(UTC) - timedelta(hours=1)
    now = datetime.now(UTC)
    return {
        "feature_code": feature_code,
        "active": start <= now and (valid_to is None or now < valid_to),
        "source": source,
        "source_id": source_id,
        "valid_from": iso(start),
        "valid_to": None if valid_to is None else iso(valid_to),
    }


def notification_body(
    user_id: str,
    version: int,
    entitlements: list[Json],
    *,
    notification_id: str | None = None,
    project_id: int = PROJECT_ID,
    kind: str = "entitlements.updated",
    data: Json | None = None,
) -> bytes:
    envelope = {
        "id": notification_id or f"ntf_{uuid.uuid4().hex}",
        "type": kind,
        "created": int(time.time()),
        "project_id": project_id,
        "data": data if data is not None else {"user_id": user_id, "version": version, "entitlements": entitlements},
    }
    return json.dumps(envelope).encode()


def signed(body: bytes, *secrets: str, timestamp: int | None = None) -> dict[str, str]:
    return {"X-Billing-Signature": signature_header(body, list(secrets or (SECRET,)), timestamp)}


class FakeService:
    """The service's API as an httpx.MockTransport: users' entitlements, scripted answers, every request kept."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.request_times: list[float] = []
        self.entitlements: dict[str, list[Json]] = {}
        self.versions: dict[str, int] = {}
        self._scripts: dict[tuple[str, str], deque[httpx.Response | Exception]] = {}
        self.on_request: Callable[[httpx.Request], None] | None = None
        self.lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **options: Any) -> BillingClient:
        settings: dict[str, Any] = {
            "notification_secrets": SECRET,
            "backoff_base": 0.001,
            "transport": self.transport(),
        }
        settings.update(options)
        return BillingClient(BASE_URL, API_KEY, PROJECT_ID, **settings)

    def script(self, method: str, path: str, *answers: httpx.Response | Exception) -> None:
        """Answer the next requests to (method, path) with these, in order, then as usual."""
        self._scripts.setdefault((method, path), deque()).extend(answers)

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            self.request_times.append(time.monotonic())
            scripted = self._scripts.get((request.method, request.url.path))
            answer = scripted.popleft() if scripted else None
        if self.on_request is not None:
            self.on_request(request)
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        return self._default(request)

    def _default(self, request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, request.url.params
        if path == "/api/v1/entitlements":
            user_id = params["user_id"]
            body: Json = {"entitlements": self.entitlements.get(user_id, [])}
            # As the service does: the version in a header, the body exactly as the contract shows it.
            headers = {"X-Entitlements-Version": str(self.versions[user_id])} if user_id in self.versions else {}
            return httpx.Response(200, json=body, headers=headers)
        if path == "/api/v1/entitlements/check":
            codes = {e["feature_code"] for e in self.entitlements.get(params["user_id"], []) if e["active"]}
            code = params["feature_code"]
            return httpx.Response(200, json={"feature_code": code, "active": code in codes, "valid_to": None})
        return httpx.Response(404, json={"detail": f"no fake for {request.method} {path}"})


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveService:
    """A real HTTP server on 127.0.0.1 serving GET /api/v1/entitlements, keeping who called and from where."""

    def __init__(self) -> None:
        self.entitlements: dict[str, list[Json]] = {}
        self.seen: list[dict[str, Any]] = []
        # Open connections, closed by stop(): a keep-alive connection would otherwise outlive the server.
        self.connections: set[socket.socket] = set()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client's pool may reuse the connection

            def setup(self) -> None:
                super().setup()
                service.connections.add(self.connection)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                service.seen.append({"path": url.path, "query": query, "peer": self.client_address, **self.headers})
                body = json.dumps({"entitlements": service.entitlements.get(query.get("user_id", ""), [])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for connection in list(self.connections):
            with contextlib.suppress(OSError):  # already closed by its peer
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self._thread.join(timeout=5)


@contextmanager
def live_service() -> Iterator[LiveService]:
    service = LiveService()
    service._thread.start()
    try:
        yield service
    finally:
        if service._thread.is_alive():
            service.stop()
