"""The SDK (clients/python) as a micro-app's notification receiver, fed by the service's real outbox and
fulfillment worker: a late, older notification leaves the cache at the newer version, and a
redelivered notification id is dropped.

MicroApp is the micro-app of these tests and of tests/e2e/test_notifications_e2e.py: one
BillingClient whose requests to the service are counted, and its WSGI notification receiver
(billing_client.wsgi.notification_app) served on 127.0.0.1 by a small threaded wsgiref server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from billing_client import BillingClient, Notification
from billing_client.wsgi import notification_app
from django.utils import timezone

from apps.entitlements.grants import grant_create
from apps.entitlements.notifications.models import Delivery, DeliveryAttempt
from apps.entitlements.notifications.models import Notification as OutboxNotification
from apps.entitlements.notifications.services import notifications_replay
from apps.entitlements.notifications.worker import fulfillment_run
from tests.conftest import Tenant

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

pytestmark = pytest.mark.django_db

NOTIFICATION_ID_ENVIRON = "HTTP_X_BILLING_NOTIFICATION_ID"  # the worker's X-Billing-Notification-Id


# --- the micro-app ---------------------------------------------------------------------------------


class CountingTransport(httpx.BaseTransport):
    """Passes every request of the SDK on to `inner` and keeps its path: what the micro-app asked the service."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self._paths.append(request.url.path)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    @property
    def paths(self) -> list[str]:
        with self._lock:
            return list(self._paths)


class RecordingClient(BillingClient):
    """The SDK's client, unchanged, plus a record of what handle_notification did with each notification."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outcomes_lock = threading.Lock()
        self._outcomes: list[tuple[str, str]] = []

    def handle_notification(self, body: bytes, headers: Mapping[str, str]) -> Notification:
        notification = super().handle_notification(body, headers)
        with self._outcomes_lock:
            self._outcomes.append((notification.id, notification.outcome))
        return notification

    @property
    def outcomes(self) -> list[tuple[str, str]]:
        """(notification id, outcome) in the order the receiver handled them."""
        with self._outcomes_lock:
            return list(self._outcomes)


@dataclass(frozen=True)
class Arrival:
    notification_id: str
    status: int  # what the micro-app answered


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test asserts what matters


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MicroApp:
    """A micro-app's notification receiver on 127.0.0.1: the SDK's WSGI adapter, in a threaded wsgiref server.

    listen() first (the URL is needed to register the endpoint, whose answer holds the secret the
    client is built with), then serve(client). Until then, and for the ids given to fail_once(), it
    answers 503 without handing the notification to the SDK, as a micro-app that is restarting would.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._fail_once: set[str] = set()
        self._receiver: WSGIApplication | None = None
        self._server: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "listen() first"
        return f"http://127.0.0.1:{self._server.server_port}/billing/notify"

    def listen(self) -> MicroApp:
        self._server = make_server(
            "127.0.0.1", 0, self._app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="micro-app", daemon=True)
        self._thread.start()
        return self

    def serve(self, client: BillingClient) -> None:
        with self._lock:
            self._receiver = notification_app(client)

    def fail_once(self, notification_id: str) -> None:
        with self._lock:
            self._fail_once.add(notification_id)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        notification_id = str(environ.get(NOTIFICATION_ID_ENVIRON, ""))
        with self._lock:
            receiver = self._receiver
            refuse = receiver is None or notification_id in self._fail_once
            self._fail_once.discard(notification_id)
        status: list[int] = []

        def recording_start(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(int(line.split()[0]))
            return start_response(line, headers, exc_info)

        if refuse or receiver is None:
            recording_start("503 Service Unavailable", [("Content-Length", "0")])
            body: Iterable[bytes] = [b""]
        else:
            body = receiver(environ, recording_start)
        with self._lock:
            self._arrivals.append(Arrival(notification_id, status[0]))
        return body


def refusing_service(request: httpx.Request) -> httpx.Response:
    """The service as seen by a client that must not call it: every request is an error (and counted)."""
    return httpx.Response(500, json={"detail": "this test's client must answer from its cache"})


# --- the tests -------------------------------------------------------------------------------------


@pytest.fixture
def micro_app() -> Iterator[MicroApp]:
    app = MicroApp().listen()
    try:
        yield app
    finally:
        app.stop()


@dataclass
class Subscribed:
    client: RecordingClient
    transport: CountingTransport
    applied: list[Notification]  # what on_notification saw: the micro-app's own side effects


@pytest.fixture
def subscribed(labs: Tenant, micro_app: MicroApp) -> Iterator[Subscribed]:
    """The micro-app's endpoint registered through the API, and its client built with the answered secret."""
    labs.project.feature_codes = ["labs", "beta"]
    labs.project.save(update_fields=["feature_codes"])
    answer = labs.client().post(
        f"/api/v1/apps/{labs.app.pk}/endpoints",
        {"url": micro_app.url, "event_types": ["entitlements.updated"]},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    transport = CountingTransport(httpx.MockTransport(refusing_service))
    applied: list[Notification] = []
    client = RecordingClient(
        "http://billing.invalid",
        labs.key,
        labs.project.pk,
        cache_ttl=3600,
        notification_secrets=answer.json()["secret"],
        transport=transport,
        on_notification=applied.append,
    )
    micro_app.serve(client)
    try:
        yield Subscribed(client, transport, applied)
    finally:
        client.close()


def _grant(tenant: Tenant, feature_code: str, user_id: str = "u1") -> OutboxNotification:
    grant_create(
        project=tenant.project, user_id=user_id, feature_code=feature_code, granted_by="support", reason="pilot"
    )
    return OutboxNotification.objects.filter(user_id=user_id).latest("created_at")


def test_two_notifications_delivered_in_reverse_order_leave_the_cache_at_the_newer_version(
    labs: Tenant, micro_app: MicroApp, subscribed: Subscribed
) -> None:
    first = _grant(labs, "labs")
    second = _grant(labs, "beta")
    assert (first.data["version"], second.data["version"]) == (1, 2)
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 2
    # The micro-app is restarting when version 1 reaches it: the worker will retry it later.
    micro_app.fail_once(first.pk)

    run = fulfillment_run()

    assert (run.delivered, run.retry_later) == (1, 1)
    assert subscribed.client.outcomes == [(second.pk, "applied")]
    assert subscribed.client.has_feature("u1", "beta") is True
    # Version 1's backoff has passed: the worker delivers it, after version 2.
    Delivery.objects.filter(notification=first).update(next_attempt_at=timezone.now())

    assert fulfillment_run().delivered == 1

    assert subscribed.client.outcomes == [(second.pk, "applied"), (first.pk, "stale")]
    # Still version 2's list: version 1 (labs alone) would say no to beta.
    assert subscribed.client.has_feature("u1", "beta") is True
    assert subscribed.client.has_feature("u1", "labs") is True
    assert sorted(e.feature_code for e in subscribed.client.entitlements("u1")) == ["beta", "labs"]
    assert [n.id for n in subscribed.applied if n.outcome == "applied"] == [second.pk]
    assert subscribed.transport.paths == []  # all of it from the pushes, none from the service
    assert [(a.notification_id, a.status) for a in micro_app.arrivals if a.notification_id == first.pk] == [
        (first.pk, 503),
        (first.pk, 204),
    ]
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.DELIVERED}
    log = DeliveryAttempt.objects.filter(delivery__notification=first).order_by("number")
    assert list(log.values_list("number", "status_code")) == [(1, 503), (2, 204)]


def test_a_redelivered_notification_is_dropped_by_its_id(
    labs: Tenant, micro_app: MicroApp, subscribed: Subscribed
) -> None:
    notification = _grant(labs, "labs")
    assert fulfillment_run().delivered == 1
    assert subscribed.client.has_feature("u1", "labs") is True

    # An operator replays it (the admin's and the API's replay): the worker sends the same id again.
    replayed = notifications_replay(project_id=labs.project.pk, actor="ops", notification_ids=[notification.pk])
    assert replayed.deliveries == 1
    assert fulfillment_run().delivered == 1

    assert [a.notification_id for a in micro_app.arrivals] == [notification.pk, notification.pk]
    assert [a.status for a in micro_app.arrivals] == [204, 204]  # answered 2xx: the worker stops sending it
    assert subscribed.client.outcomes == [(notification.pk, "applied"), (notification.pk, "duplicate")]
    assert [n.id for n in subscribed.applied] == [notification.pk]  # the micro-app acted once
    assert Delivery.objects.get().attempts == 2
    assert subscribed.transport.paths == []
