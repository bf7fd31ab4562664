"""Issue 15, end to end: a micro-app's has_feature() turns true from a pushed notification after a
payment on the sandbox's hosted page, and false after a revoke in the admin, without asking the service.

Everything runs as shipped, on loopback: gunicorn with docker/gunicorn.conf.py, one Celery worker
(the ledger drain, the projection, the outbox's wake-up on commit and the fulfillment worker that
signs and POSTs the notifications), a private Redis as their broker and cache, and the Stripe sandbox
delivering signed webhooks to gunicorn. The micro-app is this test process: a BillingClient with a
one-hour cache TTL whose requests are counted, and its notification receiver (MicroApp) on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import requests
from django.contrib.auth import get_user_model

from apps.catalog.demo import demo_catalog_seed
from apps.common.stripe_gateway import webhook_endpoint_replace
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant
from tests.faults import processes
from tests.faults.processes import Process, WebServer
from tests.notifications.test_sdk_against_service import CountingTransport, MicroApp, RecordingClient

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]

USER = "micro-u1"
PUSH_TIMEOUT = 30.0  # seconds a change may take to reach the micro-app: webhook, drain, outbox, delivery
CACHE_TTL = 3600.0  # the micro-app's: nothing it sees in this test can come from a refetch
STAFF_PASSWORD = "e2e-staff-password-0123"
# What has_feature() may ask the service for; after the warm-up the micro-app must need neither.
ENTITLEMENT_READS = ("/api/v1/entitlements", "/api/v1/entitlements/check")


@dataclass
class Deployment:
    web: WebServer
    worker: Process
    tenant: Tenant
    prices: dict[str, str]  # demo price key -> Stripe price id

    def api(self) -> requests.Session:
        """The service's API with the tenant's key, as another of its tools (not the micro-app) uses it."""
        session = requests.Session()
        session.headers["X-API-Key"] = self.tenant.key
        return session


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _web_start(env: dict[str, str], *, port: int, log_dir: Path) -> WebServer:
    """gunicorn as shipped on a port chosen before it starts: the sandbox's webhook endpoint (and so its
    signing secret, which the server's environment needs) is registered at that port first."""
    process = processes.start_process(f"web-{port}", processes.web_argv(port), env=env, log_dir=log_dir)
    web = WebServer(process, port)
    try:
        processes.wait_until(
            lambda: _answers(f"{web.base_url}/live") or not process.alive(), timeout=90, what="gunicorn /live"
        )
        assert process.alive(), process.log_tail()
    except BaseException:
        web.stop()
        raise
    return web


@pytest.fixture
def deployment(tmp_path: Path, labs: Tenant, stripe_sandbox: SandboxProcess) -> Iterator[Deployment]:
    """The web server, a worker and their Redis for this test; all stopped when it ends, failing or not."""
    prices = {key.removeprefix("alpha-"): price for key, price, _ in demo_catalog_seed(project=labs.project)}
    get_user_model().objects.create_superuser("ops", "ops@example.com", STAFF_PASSWORD)
    with ExitStack() as stopping:
        redis = processes.redis_server(tmp_path / "redis")
        stopping.callback(redis.stop)
        port = processes.free_port()
        stripe_endpoint = webhook_endpoint_replace(
            url=f"http://127.0.0.1:{port}/api/v1/webhooks/stripe", enabled_events=["*"]
        )
        env = processes.service_env(
            var_dir=tmp_path / "var",
            redis_url=redis.url(0),
            broker_url=redis.url(1),
            stripe_api_host=stripe_sandbox.base_url,
            stripe_secret_key=stripe_sandbox.api_key,
            webhook_secret=stripe_endpoint["secret"],
            WEB_CONCURRENCY="1",  # enough for one micro-app; the machine runs the worker too
        )
        # No beat: the wake-up on commit alone must bring the notifications.
        worker = processes.start_worker(env, log_dir=tmp_path / "logs")
        stopping.callback(worker.stop, timeout=5)
        web = _web_start(env, port=port, log_dir=tmp_path / "logs")
        stopping.callback(web.stop)
        yield Deployment(web=web, worker=worker, tenant=labs, prices=prices)


@dataclass
class Micro:
    app: MicroApp
    client: RecordingClient
    transport: CountingTransport


@pytest.fixture
def micro(deployment: Deployment) -> Iterator[Micro]:
    """The micro-app: its receiver registered through the API, its client built with the answered secret."""
    app = MicroApp().listen()
    try:
        registered = deployment.api().post(
            f"{deployment.web.base_url}/api/v1/apps/{deployment.tenant.app.pk}/endpoints",
            json={"url": app.url, "event_types": ["entitlements.updated"]},
            timeout=10,
        )
        assert registered.status_code == 201, registered.text
        transport = CountingTransport(httpx.HTTPTransport())
        client = RecordingClient(
            deployment.web.base_url,
            deployment.tenant.key,
            deployment.tenant.project.pk,
            cache_ttl=CACHE_TTL,
            notification_secrets=registered.json()["secret"],
            transport=transport,
        )
        app.serve(client)
        with client:
            yield Micro(app, client, transport)
    finally:
        app.stop()


def _until_pushed(micro: Micro, worker: Process, feature_code: str, expected: bool) -> None:
    """Polls has_feature() until it says `expected`, well before the cache's TTL; no request may be made."""
    started = time.monotonic()
    before = micro.transport.paths
    while micro.client.has_feature(USER, feature_code) is not expected:
        assert worker.alive(), worker.log_tail()
        if time.monotonic() - started > PUSH_TIMEOUT:
            raise AssertionError(
                f"has_feature({feature_code!r}) still not {expected} after {PUSH_TIMEOUT:g} s; "
                f"the micro-app handled {micro.client.outcomes}; worker log: {worker.log_tail(1500)}"
            )
        time.sleep(0.05)
    assert micro.transport.paths == before, "the answer came from a request, not from the push"


class _Forms(HTMLParser):
    """The fields of each <form> of an admin page, as a browser would submit them (text inputs aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[list[tuple[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "form":
            self.forms.append([])
        elif tag == "input" and self.forms and fields.get("type") == "hidden" and fields.get("name"):
            self.forms[-1].append((str(fields["name"]), fields.get("value") or ""))


def _hidden_fields(html: str) -> list[tuple[str, str]]:
    parser = _Forms()
    parser.feed(html)
    forms = [form for form in parser.forms if any(name == "csrfmiddlewaretoken" for name, _ in form)]
    assert forms, html[:500]
    return forms[-1]


def _admin_revoke(base_url: str, grant_id: int) -> None:
    """A staff member revokes the grant in the admin: log in, the grant list's "Revoke selected grants"
    action on that one row, then its reason page."""
    staff = requests.Session()
    login_url = f"{base_url}/admin/login/"
    login_page = staff.get(login_url, params={"next": "/admin/"}, timeout=10)
    login = staff.post(
        login_url,
        data=[*_hidden_fields(login_page.text), ("username", "ops"), ("password", STAFF_PASSWORD)],
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 302, login.text[:500]
    grants_url = f"{base_url}/admin/entitlements/grant/"
    listing = staff.get(grants_url, params={"user_id": USER}, timeout=10)
    assert listing.status_code == 200 and f'value="{grant_id}"' in listing.text
    token = dict(_hidden_fields(listing.text))["csrfmiddlewaretoken"]
    chosen = [
        ("csrfmiddlewaretoken", token),
        ("action", "revoke"),
        ("select_across", "0"),
        ("index", "0"),
        ("_selected_action", str(grant_id)),
    ]
    reason_page = staff.post(grants_url, data=chosen, allow_redirects=False, timeout=10)
    assert reason_page.status_code == 200 and 'name="reason"' in reason_page.text, reason_page.text[:500]
    done = staff.post(
        grants_url,
        data=[*_hidden_fields(reason_page.text), ("reason", "abuse of the labs preview")],
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 302, done.text[:500]
    assert "Revoked 1 grant(s)." in staff.get(urljoin(grants_url, done.headers["Location"]), timeout=10).text


def test_a_payment_and_an_admin_revoke_reach_has_feature_by_push_before_the_ttl(
    deployment: Deployment, micro: Micro
) -> None:
    base_url = deployment.web.base_url
    # Warm: one read of the user's whole list, then the cache answers for an hour.
    assert micro.client.has_feature(USER, "pro") is False
    assert micro.client.has_feature(USER, "labs") is False
    assert micro.transport.paths == ["/api/v1/entitlements"]

    checkout = micro.client.checkout_session(
        USER,
        deployment.prices["pro-monthly"],
        success_url="https://alpha.example/ok",
        cancel_url="https://alpha.example/no",
    )
    paid = requests.post(
        f"{checkout.checkout_url}/pay", data={"card_number": "4242424242424242"}, allow_redirects=False, timeout=10
    )
    assert paid.status_code == 303, paid.text[:300]
    warm_and_checkout = micro.transport.paths

    _until_pushed(micro, deployment.worker, "pro", True)

    # A support tool (not the micro-app: its cache is left alone) grants labs through the API...
    granted = deployment.api().post(
        f"{base_url}/api/v1/admin/grant",
        json={
            "user_id": USER,
            "project_id": deployment.tenant.project.pk,
            "feature_code": "labs",
            "granted_by": "support",
            "reason": "labs preview",
        },
        timeout=10,
    )
    assert granted.status_code == 201, granted.text
    _until_pushed(micro, deployment.worker, "labs", True)
    # ... and a staff member revokes it in the admin.
    _admin_revoke(base_url, granted.json()["grant_id"])
    _until_pushed(micro, deployment.worker, "labs", False)

    assert micro.client.has_feature(USER, "pro") is True  # the newer list still has the subscription
    # Since the warm-up the micro-app asked the service for nothing but the checkout session.
    assert warm_and_checkout == ["/api/v1/entitlements", "/api/v1/checkout/session"]
    assert micro.transport.paths == warm_and_checkout
    assert not any(path in ENTITLEMENT_READS for path in micro.transport.paths[1:])
    # The payment, the grant and the revoke: a notification applied for each, well inside the TTL.
    applied = [notification_id for notification_id, outcome in micro.client.outcomes if outcome == "applied"]
    assert len(applied) >= 3, micro.client.outcomes
    # The service agrees with what the push told the micro-app.
    check = deployment.api().get(
        f"{base_url}/api/v1/entitlements/check",
        params={"user_id": USER, "project_id": str(deployment.tenant.project.pk), "feature_code": "labs"},
        timeout=10,
    )
    assert check.json()["active"] is False
