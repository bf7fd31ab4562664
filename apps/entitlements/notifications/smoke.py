"""The fulfillment smoke test: a throwaway receiver, an endpoint for it, a grant, a signed notification.

Walked as a micro-app would (`manage.py smoke_fulfillment`):
1. a receiver listens on 127.0.0.1 (an ephemeral port) and records every POST;
2. an endpoint of the app is registered for it (its secret kept);
3. a feature is granted to a throwaway user;
4. an `entitlements.updated` notification about that user arrives, its signature verifies with the
   secret, and its data shows the feature active;
5. the grant is revoked, and a newer version arrives with the feature no longer active;
6. the endpoint is deleted (also when a step failed).

`HttpService` does it through the running service's API (its worker delivers); `InProcessService`
through the service functions in this process, running the worker itself (no Celery needed).
`LocalReceiver` is also the base of the test suite's receivers and the delivery benchmark's.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self

import httpx

from apps.entitlements.notifications.signing import NOTIFICATION_ID_HEADER, SIGNATURE_HEADER, signature_verify

ENTITLEMENTS_UPDATED = "entitlements.updated"


# --- the receiver ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One POST the receiver got, and what it answered."""

    number: int  # 1 for the first request
    at: float  # time.time() when it arrived
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def signature(self) -> str:
        return self.headers.get(SIGNATURE_HEADER.lower(), "")

    @property
    def notification_id(self) -> str:
        return self.headers.get(NOTIFICATION_ID_HEADER.lower(), "")


class LocalReceiver:
    """A threaded HTTP server on 127.0.0.1 that records every POST and answers `answer()`'s status.

    Subclasses override `answer` to fail, or to be slow. Use it as a context manager.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Overridable: the status and the seconds to wait before answering the request numbered `number`.
    def answer(self, number: int) -> tuple[int, float]:
        return 200, 0.0

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the receiver first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/notifications"

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the worker's client pools its connections
            # Headers and body are two writes: with Nagle's algorithm the second would wait for the
            # client's delayed ACK (40 ms per request).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, delay = receiver._record(self.path, self.headers.items(), body)
                if delay:
                    time.sleep(delay)
                reply = b'{"ok":true}' if 200 <= status < 300 else b'{"error":"the receiver was told to fail"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (its timeout) before the answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test or the command says what matters

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, float]:
        with self._arrived:
            number = len(self._received) + 1
            status, delay = self.answer(number)
            lowered = {name.lower(): value for name, value in headers}
            self._received.append(Received(number, time.time(), path, lowered, body, status))
            self._arrived.notify_all()
        return status, delay

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def notification_ids(self) -> list[str]:
        """The X-Billing-Notification-Id of every request, in arrival order."""
        return [request.notification_id for request in self.received]

    def wait_for(self, count: int, *, timeout: float) -> list[Received]:
        """Waits until at least `count` requests arrived (or `timeout` passed); what arrived."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._received) < count and (left := deadline - time.monotonic()) > 0:
                self._arrived.wait(left)
            return list(self._received)


# --- the services the smoke test drives ------------------------------------------------------------


class SmokeFailure(Exception):
    pass


@dataclass(frozen=True)
class SmokeEndpoint:
    id: int
    secret: str


class Service(Protocol):
    def endpoint_create(self, url: str) -> SmokeEndpoint: ...
    def endpoint_delete(self, endpoint: SmokeEndpoint) -> None: ...
    def grant(self, user_id: str, feature_code: str) -> None: ...
    def revoke(self, user_id: str, feature_code: str) -> None: ...
    def pump(self, endpoint: SmokeEndpoint) -> None:
        """Give the worker a chance to deliver: runs it in this process, or nothing (the service's does)."""


def _expect(response: httpx.Response, wanted: int, what: str) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"body": response.text[:200]}
    if response.status_code != wanted:
        raise SmokeFailure(f"{what}: HTTP {response.status_code}, expected {wanted}: {body}")
    return body


@dataclass
class HttpService:
    """The running service's API, with a key that has `admin:write` (grants) and may manage its app's endpoints."""

    base_url: str
    api_key: str
    app_id: int | None = None
    timeout: float = 30.0
    project_id: int = 0
    _client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self._client = httpx.Client(
            base_url=self.base_url.rstrip("/"),
            headers={"X-API-Key": self.api_key, "Accept": "application/json"},
            timeout=self.timeout,
        )
        me = _expect(self._client.get("/api/v1/me"), 200, "GET /api/v1/me")
        self.project_id = int(me["project"]["id"])
        if self.app_id is None:
            self.app_id = int(me["app"]["id"])

    def endpoint_create(self, url: str) -> SmokeEndpoint:
        body = {"url": url, "event_types": [ENTITLEMENTS_UPDATED]}
        answer = _expect(
            self._client.post(f"/api/v1/apps/{self.app_id}/endpoints", json=body),
            201,
            f"POST /api/v1/apps/{self.app_id}/endpoints",
        )
        return SmokeEndpoint(id=int(answer["id"]), secret=str(answer["secret"]))

    def endpoint_delete(self, endpoint: SmokeEndpoint) -> None:
        path = f"/api/v1/apps/{self.app_id}/endpoints/{endpoint.id}"
        _expect(self._client.delete(path), 200, f"DELETE {path}")

    def grant(self, user_id: str, feature_code: str) -> None:
        body = {
            "user_id": user_id,
            "project_id": self.project_id,
            "feature_code": feature_code,
            "granted_by": "smoke_fulfillment",
            "reason": "fulfillment smoke test",
        }
        _expect(self._client.post("/api/v1/admin/grant", json=body), 201, "POST /api/v1/admin/grant")

    def revoke(self, user_id: str, feature_code: str) -> None:
        body = {
            "user_id": user_id,
            "project_id": self.project_id,
            "feature_code": feature_code,
            "revoked_by": "smoke_fulfillment",
            "reason": "fulfillment smoke test",
        }
        _expect(self._client.post("/api/v1/admin/revoke", json=body), 200, "POST /api/v1/admin/revoke")

    def pump(self, endpoint: SmokeEndpoint) -> None:
        return None  # the service's own worker delivers

    def close(self) -> None:
        self._client.close()


@dataclass
class InProcessService:
    """This process's service functions on the database it is configured with; runs the worker itself."""

    project_id: int
    app_id: int

    def endpoint_create(self, url: str) -> SmokeEndpoint:
        from apps.entitlements.notifications.models import NotificationEndpoint

        # The ORM directly: what the endpoints API stores, without its URL rules (http on 127.0.0.1).
        endpoint = NotificationEndpoint.objects.create(app_id=self.app_id, url=url, event_types=[ENTITLEMENTS_UPDATED])
        return SmokeEndpoint(id=endpoint.pk, secret=endpoint.secret)

    def endpoint_delete(self, endpoint: SmokeEndpoint) -> None:
        from apps.entitlements.notifications.models import NotificationEndpoint

        NotificationEndpoint.objects.filter(pk=endpoint.id).delete()

    def grant(self, user_id: str, feature_code: str) -> None:
        from apps.entitlements.grants import grant_create
        from apps.projects.models import Project

        project = Project.objects.get(pk=self.project_id)
        grant_create(
            project=project,
            user_id=user_id,
            feature_code=feature_code,
            granted_by="smoke_fulfillment",
            reason="fulfillment smoke test",
        )

    def revoke(self, user_id: str, feature_code: str) -> None:
        from apps.entitlements.grants import grants_revoke
        from apps.projects.models import Project

        project = Project.objects.get(pk=self.project_id)
        grants_revoke(
            project=project,
            user_id=user_id,
            feature_code=feature_code,
            revoked_by="smoke_fulfillment",
            reason="fulfillment smoke test",
        )

    def pump(self, endpoint: SmokeEndpoint) -> None:
        from apps.entitlements.notifications.delivery import fulfillment_config
        from apps.entitlements.notifications.worker import fulfillment_run

        # Only this endpoint's deliveries, whatever FULFILLMENT_WORKER_ENABLED says: the smoke test
        # checks the delivery path, and sends nothing that belongs to anyone else.
        config = replace(fulfillment_config(), enabled=True)
        fulfillment_run(endpoint_id=endpoint.id, budget_seconds=10, housekeeping=False, config=config)


# --- the walk --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    notification_id: str
    version: int
    active: bool
    seconds: float  # from the change to the arrival


def _feature_active(data: dict[str, Any], feature_code: str) -> bool:
    return any(e.get("feature_code") == feature_code and e.get("active") for e in data.get("entitlements", []))


def _arrival(
    service: Service,
    receiver: LocalReceiver,
    endpoint: SmokeEndpoint,
    *,
    user_id: str,
    feature_code: str,
    newer_than: int,
    since: float,
    timeout: float,
) -> Arrival:
    """The first notification about `user_id` newer than `newer_than`; SmokeFailure if none verifies in time."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        service.pump(endpoint)
        for request in receiver.received[seen:]:
            seen += 1
            envelope = request.json()
            data = envelope.get("data", {})
            if envelope.get("type") != ENTITLEMENTS_UPDATED or data.get("user_id") != user_id:
                continue
            if not signature_verify(
                body=request.body, header=request.signature, secret=endpoint.secret, now=time.time()
            ):
                raise SmokeFailure(f"notification {envelope.get('id')}: its signature does not verify with the secret")
            if request.notification_id != envelope.get("id"):
                raise SmokeFailure(f"notification {envelope.get('id')}: {NOTIFICATION_ID_HEADER} says otherwise")
            if int(data.get("version", 0)) > newer_than:
                return Arrival(
                    envelope["id"], int(data["version"]), _feature_active(data, feature_code), request.at - since
                )
        left = deadline - time.monotonic()
        if left <= 0:
            raise SmokeFailure(f"no signed notification about {user_id} arrived within {timeout:g}s")
        receiver.wait_for(seen + 1, timeout=min(left, 0.5))


def smoke_fulfillment(
    service: Service,
    say: Callable[[str], None],
    *,
    feature_code: str,
    timeout: float = 30.0,
    receiver: LocalReceiver | None = None,
) -> list[Arrival]:
    """Raises SmokeFailure at the first step that does not behave; the two arrivals otherwise."""
    user_id = f"smoke-{uuid.uuid4().hex[:12]}"
    own_receiver = receiver is None
    if receiver is None:
        receiver = LocalReceiver().start()
    endpoint: SmokeEndpoint | None = None
    try:
        say(f"ok   a receiver listens at {receiver.url}")
        endpoint = service.endpoint_create(receiver.url)
        say(f"ok   endpoint {endpoint.id} is registered for it (entitlements.updated)")

        changed = time.time()
        service.grant(user_id, feature_code)
        say(f"ok   {feature_code!r} is granted to {user_id}")
        granted = _arrival(
            service,
            receiver,
            endpoint,
            user_id=user_id,
            feature_code=feature_code,
            newer_than=0,
            since=changed,
            timeout=timeout,
        )
        if not granted.active:
            raise SmokeFailure(f"notification {granted.notification_id} does not show {feature_code!r} active")
        say(
            f"ok   signed notification {granted.notification_id} (version {granted.version}) shows it active, "
            f"{granted.seconds * 1000:.0f} ms after the grant"
        )

        changed = time.time()
        service.revoke(user_id, feature_code)
        revoked = _arrival(
            service,
            receiver,
            endpoint,
            user_id=user_id,
            feature_code=feature_code,
            newer_than=granted.version,
            since=changed,
            timeout=timeout,
        )
        if revoked.active:
            raise SmokeFailure(f"notification {revoked.notification_id} still shows {feature_code!r} active")
        say(
            f"ok   after the revoke, notification {revoked.notification_id} (version {revoked.version}) shows it "
            f"inactive, {revoked.seconds * 1000:.0f} ms after the revoke"
        )
        service.endpoint_delete(endpoint)
        endpoint = None
        say("ok   the endpoint is deleted")
        return [granted, revoked]
    finally:
        if endpoint is not None:
            try:
                service.endpoint_delete(endpoint)
            except Exception as exc:
                say(f"--   could not delete endpoint {endpoint.id}: {exc}")
        if own_receiver:
            receiver.stop()
